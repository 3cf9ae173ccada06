"""steep jobs, sync and async flavours (server from STEEP_REDIS_URL, set by the harness)."""

from __future__ import annotations

from steep import job
from systems import bodies


@job(queue="bench")
def noop_sync(i: int) -> None:
    bodies.noop(i)


@job(queue="bench")
async def noop_async(i: int) -> None:
    bodies.noop(i)


@job(queue="bench")
def io_sync(i: int) -> None:
    bodies.io_sync(i)


@job(queue="bench")
async def io_async(i: int) -> None:
    await bodies.io_async(i)


@job(queue="bench")
def lat_sync(i: int) -> None:
    bodies.lat(i)


@job(queue="bench")
async def lat_async(i: int) -> None:
    bodies.lat(i)
