"""Celery with the Redis broker (kombu): prefork pool and threads pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import QUEUE, Shape, Variant, WorkerCtx

_DISTS = ("celery", "kombu", "redis", "hiredis")
_COMMON = (
    "-Q bench -l WARNING --without-gossip --without-mingle --without-heartbeat; "
    "task_ignore_result, no result backend; worker_prefetch_multiplier 64 for noop/latency "
    "(Celery's optimizing guide: large for many short tasks), 4 (default) for io"
)

VARIANTS = (
    Variant(
        name="celery-prefork",
        equal_slots=1,
        adapter="celery",
        env="celery",
        dists=_DISTS,
        noop=Shape(4, 1, "one worker, 4 prefork children"),
        io=Shape(50, 1, "one worker, 50 prefork children"),
        setup=f"celery worker -P prefork -c P {_COMMON}",
        reason=(
            "Celery's default pool; one worker node per machine with a child per slot. "
            "4 children (2 per core) for noop since the body waits on a round trip."
        ),
    ),
    Variant(
        name="celery-threads",
        equal_slots=10,
        adapter="celery",
        env="celery",
        dists=_DISTS,
        noop=Shape(2, 10, "two worker nodes x 10 threads"),
        io=Shape(2, 25, "two worker nodes x 25 threads"),
        setup=f"P x celery worker -P threads -c T -n tN@bench {_COMMON}",
        reason=(
            "The threads pool shares one GIL per node, so one node per core (2) uses both "
            "cores; threads are the pool Celery documents for I/O-bound work."
        ),
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    base = [
        ctx.bin("celery"),
        "-A",
        "systems.celery_tasks",
        "worker",
        "-Q",
        QUEUE,
        "-l",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if ctx.variant.row == "celery-prefork":
        return [[*base, "-P", "prefork", "-c", str(ctx.shape.total), "-n", "prefork@bench"]]
    return [
        [*base, "-P", "threads", "-c", str(ctx.shape.slots), "-n", f"t{k}@bench"]
        for k in range(1, ctx.shape.processes + 1)
    ]


class _Producer:
    is_async = False

    def __init__(self) -> None:
        from systems import celery_tasks

        self.tasks = {"noop": celery_tasks.noop, "io": celery_tasks.io, "lat": celery_tasks.lat}
        self.app = celery_tasks.app

    def enqueue(self, kind: str, i: int) -> None:
        self.tasks[kind].delay(i)

    def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        raise NotImplementedError("Celery has no bulk enqueue (group() publishes one by one)")

    def close(self) -> None:
        self.app.close()


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer()
