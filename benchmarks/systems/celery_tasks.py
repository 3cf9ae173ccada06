"""Celery app and tasks (broker URL from BENCH_REDIS_URL)."""

from __future__ import annotations

import os

from celery import Celery

from systems import bodies

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_default_queue="bench",
    task_ignore_result=True,
    worker_prefetch_multiplier=4 if os.environ.get("BENCH_SCENARIO") == "io" else 64,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)


@app.task(name="noop")
def noop(i: int) -> None:
    bodies.noop(i)


@app.task(name="io")
def io(i: int) -> None:
    bodies.io_sync(i)


@app.task(name="lat")
def lat(i: int) -> None:
    bodies.lat(i)
