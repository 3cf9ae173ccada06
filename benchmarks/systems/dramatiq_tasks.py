"""Dramatiq broker and actors (broker URL from BENCH_REDIS_URL)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from systems import bodies

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(i: int) -> None:
    bodies.noop(i)


@dramatiq.actor(queue_name="bench", max_retries=0)
def io(i: int) -> None:
    bodies.io_sync(i)


@dramatiq.actor(queue_name="bench", max_retries=0)
def lat(i: int) -> None:
    bodies.lat(i)
