"""SAQ queue, functions and worker settings (Redis from BENCH_REDIS_URL)."""

from __future__ import annotations

import os
from typing import Any

from saq import Queue

from systems import bodies

queue = Queue.from_url(os.environ["BENCH_REDIS_URL"], name="bench")


async def noop(ctx: dict[str, Any], *, i: int) -> None:
    bodies.noop(i)


async def io(ctx: dict[str, Any], *, i: int) -> None:
    await bodies.io_async(i)


async def lat(ctx: dict[str, Any], *, i: int) -> None:
    bodies.lat(i)


settings = {
    "queue": queue,
    "functions": [noop, io, lat],
    "concurrency": int(os.environ.get("BENCH_SLOTS", "10")),
}
