"""arq functions and WorkerSettings (Redis from BENCH_REDIS_URL, max_jobs from BENCH_SLOTS)."""

from __future__ import annotations

import logging
import os
from typing import Any

from arq.connections import RedisSettings

from systems import bodies


async def noop(ctx: dict[str, Any], i: int) -> None:
    bodies.noop(i)


async def io(ctx: dict[str, Any], i: int) -> None:
    await bodies.io_async(i)


async def lat(ctx: dict[str, Any], i: int) -> None:
    bodies.lat(i)


async def _quiet(ctx: dict[str, Any]) -> None:
    # arq's CLI configures INFO logging with one line per job start and end; every other system
    # runs at WARNING, so arq does too (set after the CLI's logging setup).
    logging.getLogger("arq").setLevel(logging.WARNING)


class WorkerSettings:
    functions = [noop, io, lat]
    redis_settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
    max_jobs = int(os.environ.get("BENCH_SLOTS", "10"))
    keep_result = 0
    on_startup = _quiet
