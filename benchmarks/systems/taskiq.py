"""taskiq with taskiq-redis: ListQueueBroker and RedisStreamBroker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import Shape, Variant, WorkerCtx

_DISTS = ("taskiq", "taskiq-redis", "redis", "hiredis")
_REASON = (
    "taskiq's worker CLI starts --workers processes (default 2), each an event loop running up "
    "to --max-async-tasks jobs; 2 processes for 2 cores, slots capped like the others."
)

VARIANTS = (
    Variant(
        name="taskiq-list",
        equal_slots=10,
        adapter="taskiq",
        env="taskiq",
        dists=_DISTS,
        noop=Shape(2, 10, "worker processes x max-async-tasks"),
        io=Shape(2, 25, "worker processes x max-async-tasks"),
        setup="taskiq worker systems.taskiq_tasks:broker --workers P --max-async-tasks T "
        "(ListQueueBroker: BRPOP, no acknowledgement)",
        reason=_REASON,
        async_jobs=True,
    ),
    Variant(
        name="taskiq-stream",
        adapter="taskiq",
        env="taskiq",
        dists=_DISTS,
        noop=Shape(2, 10, "worker processes x max-async-tasks"),
        io=Shape(2, 25, "worker processes x max-async-tasks"),
        setup="taskiq worker ... (RedisStreamBroker: consumer group, XACK; consumer_id='0' so "
        "jobs sent before the group exists are read)",
        reason=_REASON,
        async_jobs=True,
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    return [
        [
            ctx.bin("taskiq"),
            "worker",
            "systems.taskiq_tasks:broker",
            "--workers",
            str(ctx.shape.processes),
            "--max-async-tasks",
            str(ctx.shape.slots),
            "--log-level",
            "WARNING",
        ]
    ]


class _Producer:
    is_async = True

    def __init__(self) -> None:
        from systems import taskiq_tasks

        self.broker = taskiq_tasks.broker
        self.tasks = {"noop": taskiq_tasks.noop, "io": taskiq_tasks.io, "lat": taskiq_tasks.lat}
        self.started = False

    async def enqueue(self, kind: str, i: int) -> None:
        if not self.started:
            await self.broker.startup()
            self.started = True
        await self.tasks[kind].kiq(i)

    async def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        raise NotImplementedError("taskiq has no bulk enqueue")

    async def close(self) -> None:
        if self.started:
            await self.broker.shutdown()


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer()
