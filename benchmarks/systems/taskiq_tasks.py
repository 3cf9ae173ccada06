"""taskiq broker and tasks; BENCH_VARIANT picks the broker (taskiq-list / taskiq-stream)."""

from __future__ import annotations

import os

from taskiq import AsyncBroker
from taskiq_redis import ListQueueBroker, RedisStreamBroker

from systems import bodies

_URL = os.environ["BENCH_REDIS_URL"]

broker: AsyncBroker
if os.environ.get("BENCH_VARIANT") == "taskiq-stream":
    # consumer_id "0": a group created after jobs were sent still reads them (the drain
    # scenario fills the queue before any worker exists); the default "$" would skip them.
    broker = RedisStreamBroker(url=_URL, queue_name="bench", consumer_id="0")
else:
    broker = ListQueueBroker(url=_URL, queue_name="bench")


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    bodies.noop(i)


@broker.task(task_name="io")
async def io(i: int) -> None:
    await bodies.io_async(i)


@broker.task(task_name="lat")
async def lat(i: int) -> None:
    bodies.lat(i)
