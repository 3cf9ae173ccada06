"""Plain-function jobs for the slot-thread tests (tests/test_slots.py); no async job here,
so a `steep worker tests.slot_jobs` picks slot threads by itself."""

from __future__ import annotations

import time

from steep import current_job, job
from steep.connection import get_client


@job(queue="slots", result_ttl=60)
def double(i: int) -> int:
    get_client().incr(f"test:slots:runs:{i}")
    return 2 * i


@job(queue="slots", retries=0, result_ttl=60)
def drops_the_connections(i: int) -> int:
    """Closes every other client connection of the server, the slot's own among them,
    so the acknowledgement that follows meets a dead socket."""
    client = get_client()
    client.incr(f"test:slots:runs:{i}")
    client.client_kill_filter(_type="normal", skipme=True)
    return i


@job(queue="slots", timeout=0.2, retries=0, result_ttl=60)
def ignores_its_timeout(seconds: float) -> str:
    """One long C call: the injected JobTimeout lands only when it returns."""
    try:
        time.sleep(seconds)
    finally:  # the injected exception is raised as the sleep returns
        get_client().set("test:slots:stuck-ended", 1)
    return "finished"


@job(queue="slots", result_ttl=60)
def holds(seconds: float) -> str:
    ctx = current_job()
    assert ctx is not None
    client = get_client()
    client.set("test:slots:holding", ctx.id)
    time.sleep(seconds)
    client.set("test:slots:held-ended", ctx.id)
    return "held"
