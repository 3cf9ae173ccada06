"""arq: one ``arq`` worker process per command (arq has no multi-process launcher)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import Shape, Variant, WorkerCtx

VARIANTS = (
    Variant(
        name="arq",
        equal_slots=10,
        adapter="arq",
        env="arq",
        dists=("arq", "redis", "hiredis"),
        noop=Shape(2, 10, "arq processes x max_jobs"),
        io=Shape(2, 25, "arq processes x max_jobs"),
        setup="P x `arq systems.arq_tasks.WorkerSettings` (max_jobs=T, keep_result=0, "
        "default poll_delay 0.5 s)",
        reason=(
            "arq is one asyncio process with max_jobs concurrent jobs (default 10); its docs "
            "scale out by running more worker processes, so one per core."
        ),
        async_jobs=True,
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    return [
        [ctx.bin("arq"), "systems.arq_tasks.WorkerSettings"] for _ in range(ctx.shape.processes)
    ]


class _Producer:
    is_async = True

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.pool: Any = None

    async def _get_pool(self) -> Any:
        if self.pool is None:
            from arq import create_pool
            from arq.connections import RedisSettings

            self.pool = await create_pool(RedisSettings.from_dsn(self.redis_url))
        return self.pool

    async def enqueue(self, kind: str, i: int) -> None:
        pool = await self._get_pool()
        await pool.enqueue_job(kind, i)

    async def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        raise NotImplementedError("arq has no bulk enqueue")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer(redis_url)
