"""RQ: one ``rq worker-pool`` (RQ's own multi-process launcher) per measurement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import QUEUE, Shape, Variant, WorkerCtx

_DISTS = ("rq", "redis", "hiredis")
_TASKS = "systems.rq_tasks"
_REASON = (
    "RQ runs one job at a time per worker process, so concurrency is the number of worker "
    "processes; `rq worker-pool -n N` is RQ's own launcher for N workers on one machine. "
    "4 processes (2 per core) for noop, 50 for io. result_ttl=0: results are not kept."
)

VARIANTS = (
    Variant(
        name="rq-fork",
        adapter="rq",
        env="rq",
        dists=_DISTS,
        noop=Shape(4, 1, "worker-pool processes, a forked work horse per job"),
        io=Shape(50, 1, "worker-pool processes"),
        setup="rq worker-pool -n P -w rq.worker.Worker (default class: forks a horse per job)",
        reason=_REASON,
        bulk="Queue.enqueue_many(prepare_data(...)) in one pipeline per batch",
    ),
    Variant(
        name="rq-simple",
        equal_slots=1,
        adapter="rq",
        env="rq",
        dists=_DISTS,
        noop=Shape(4, 1, "worker-pool processes, jobs run in the worker"),
        io=Shape(50, 1, "worker-pool processes"),
        setup="rq worker-pool -n P -w rq.worker.SimpleWorker (no fork per job)",
        reason=_REASON,
        bulk="Queue.enqueue_many(prepare_data(...)) in one pipeline per batch",
    ),
)

_CLASSES = {"rq-fork": "rq.worker.Worker", "rq-simple": "rq.worker.SimpleWorker"}


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    return [
        [
            ctx.bin("rq"),
            "worker-pool",
            "--url",
            ctx.redis_url,
            "--worker-class",
            _CLASSES[ctx.variant.row],
            "--num-workers",
            str(ctx.shape.processes),
            "--logging-level",
            "WARNING",
            QUEUE,
        ]
    ]


class _Producer:
    is_async = False

    def __init__(self, redis_url: str) -> None:
        import redis
        from rq import Queue

        self._queue_cls = Queue
        self.queue = Queue(QUEUE, connection=redis.Redis.from_url(redis_url))

    def enqueue(self, kind: str, i: int) -> None:
        self.queue.enqueue(f"{_TASKS}.{kind}", i, result_ttl=0)

    def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        func = f"{_TASKS}.{kind}"
        prepare = self._queue_cls.prepare_data
        self.queue.enqueue_many([prepare(func, (i,), result_ttl=0) for i in indices])

    def close(self) -> None:
        self.queue.connection.close()


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer(redis_url)
