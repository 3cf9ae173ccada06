"""SAQ with its Redis queue: the ``saq`` CLI with ``--workers``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import Shape, Variant, WorkerCtx

VARIANTS = (
    Variant(
        name="saq",
        equal_slots=10,
        adapter="saq",
        env="saq",
        dists=("saq", "redis", "hiredis"),
        noop=Shape(2, 10, "saq worker processes x concurrency"),
        io=Shape(2, 25, "saq worker processes x concurrency"),
        setup="saq systems.saq_tasks.settings --workers P --quiet (concurrency=T, job ttl=-1)",
        reason=(
            "SAQ is asyncio with `concurrency` jobs per worker (default 10) and its CLI's "
            "--workers starts one process each; one per core."
        ),
        async_jobs=True,
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    return [
        [
            ctx.bin("saq"),
            "systems.saq_tasks.settings",
            "--workers",
            str(ctx.shape.processes),
            "--quiet",
        ]
    ]


class _Producer:
    is_async = True

    def __init__(self) -> None:
        from systems import saq_tasks

        self.queue = saq_tasks.queue

    async def enqueue(self, kind: str, i: int) -> None:
        # ttl=-1: the job is not kept after it finishes (fire and forget, like the others).
        await self.queue.enqueue(kind, i=i, ttl=-1)

    async def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        raise NotImplementedError("SAQ has no bulk enqueue (Queue.map gathers single enqueues)")

    async def close(self) -> None:
        await self.queue.disconnect()


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer()
