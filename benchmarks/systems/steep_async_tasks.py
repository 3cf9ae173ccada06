"""steep's async jobs (server from STEEP_REDIS_URL, set by the harness)."""

from __future__ import annotations

from steep import job
from systems import bodies


@job(queue="bench")
async def noop_async(i: int) -> None:
    bodies.noop(i)


@job(queue="bench")
async def io_async(i: int) -> None:
    await bodies.io_async(i)


@job(queue="bench")
async def lat_async(i: int) -> None:
    bodies.lat(i)
