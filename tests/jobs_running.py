"""Jobs for the running-job features (progress, cooperative cancel, iterable jobs);
importable by worker subprocesses as `tests.jobs_running`.

Each waits on a Redis key the test sets (`test:<tag>:go`), never on a timer.
"""

from __future__ import annotations

import asyncio
import time

from steep import current_job, job
from steep.connection import get_async_client, get_client


def _hold(tag: str) -> None:
    client = get_client()
    while not client.exists(f"test:{tag}:go"):
        time.sleep(0.01)


@job(result_ttl=60)
def reports_progress(tag: str) -> str:
    ctx = current_job()
    assert ctx is not None
    ctx.progress(0.1, "step 1")
    ctx.progress(0.4, "step 2")
    _hold(tag)
    ctx.progress(1.0, "done")
    return "finished"


@job(result_ttl=60)
async def async_reports_progress(tag: str) -> str:
    ctx = current_job()
    assert ctx is not None
    await ctx.aprogress(0.25, "async step")
    client = get_async_client()
    while not await client.exists(f"test:{tag}:go"):
        await asyncio.sleep(0.01)
    return "finished"


@job(retries=3)
def cooperative(tag: str) -> None:
    """Loops until cancelled, then stops by itself (never reaches the injected exception)."""
    ctx = current_job()
    assert ctx is not None
    client = get_client()
    client.rpush(f"test:{tag}", "started")
    while not ctx.cancelled:
        time.sleep(0.01)
    client.rpush(f"test:{tag}", "saw the flag")
    ctx.check_cancelled()


@job(iterable=True, result_ttl=60, retries=2)
def walk(tag: str, n: int, hold_at: int = -1, cursor: int | None = None):  # type: ignore[no-untyped-def]
    """Step i records i in test:<tag>:done, then yields i + 1; step `hold_at` waits for
    test:<tag>:go after its side effect (so a kill there repeats exactly that step)."""
    client = get_client()
    ctx = current_job()
    for i in range(cursor or 0, n):
        client.rpush(f"test:{tag}:done", i)
        if i == hold_at:
            client.rpush(f"test:{tag}:held", i)
            _hold(tag)
        if ctx is not None:
            ctx.progress((i + 1) / n, f"item {i}")
        yield i + 1
    return n


@job(iterable=True, retries=0)
async def async_walk(tag: str, n: int, hold_at: int = -1, cursor: int | None = None):  # type: ignore[no-untyped-def]
    client = get_async_client()
    for i in range(cursor or 0, n):
        await client.rpush(f"test:{tag}:done", i)
        if i == hold_at:
            await client.rpush(f"test:{tag}:held", i)
            while not await client.exists(f"test:{tag}:go"):
                await asyncio.sleep(0.01)
        yield i + 1
