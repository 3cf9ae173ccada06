"""Huey instance and tasks (Redis from BENCH_REDIS_URL)."""

from __future__ import annotations

import os

from huey import RedisHuey

from systems import bodies

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"], results=False)


@huey.task()
def noop(i: int) -> None:
    bodies.noop(i)


@huey.task()
def io(i: int) -> None:
    bodies.io_sync(i)


@huey.task()
def lat(i: int) -> None:
    bodies.lat(i)
