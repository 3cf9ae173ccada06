"""Job functions for the batch and workflow tests (importable by worker subprocesses)."""

from __future__ import annotations

import json
import time
from typing import Any

from steep import current_batch, current_job, job
from steep.connection import get_client
from steep.features.batches.batch import batch


def note(key: str, value: Any) -> None:
    get_client().rpush(f"test:{key}", json.dumps(value))


def notes(client: Any, key: str) -> list[Any]:
    return [json.loads(v) for v in client.lrange(f"test:{key}", 0, -1)]


@job(queue="default", retries=0)
def work(tag: str, i: int, seconds: float = 0.0) -> int:
    if seconds:
        time.sleep(seconds)
    get_client().incr(f"test:runs:{tag}")
    return i


@job(queue="default", retries=0)
def callback(status: dict[str, Any], tag: str) -> None:
    """Keeps what it was given (test:cbs:<tag>) and counts its runs (test:cb:<tag>), in that
    order: a test that saw the count go up finds the note already there."""
    note(f"cbs:{tag}", status)
    get_client().incr(f"test:cb:{tag}")


@job(queue="default", retries=3, backoff=0.05)
def flaky(tag: str, failures: int) -> str:
    ctx = current_job()
    assert ctx is not None
    note(f"attempts:{tag}", ctx.attempt)
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt} fails on purpose")
    return "ok"


@job(queue="default", retries=1, backoff=0.05)
def fails_while_flagged(flag: str) -> str:
    """Dies while test:<flag> is set; succeeds once it is removed."""
    if get_client().exists(f"test:{flag}"):
        raise ValueError(f"{flag} is set")
    return "ok"


@job(queue="default", retries=0)
def add_one(x: int) -> int:
    return x + 1


@job(queue="default", retries=0)
def times(x: int, factor: int) -> int:
    return x * factor


@job(queue="default", retries=0)
def collect(results: list[Any], tag: str) -> None:
    note(f"cbs:{tag}", results)  # before the count, as in callback()
    get_client().incr(f"test:cb:{tag}")


@job(queue="default", retries=0)
def step_note(*args: Any) -> str:
    note("steps", list(args))
    return "noted"


@job(queue="default", retries=0)
def spawn_child(tag: str, n: int, seconds: float) -> str:
    """A member that makes a child batch of n slow jobs (a child of its own batch)."""
    with batch(description=f"child {tag}", on_complete=callback.s(f"child-{tag}")) as b:
        for i in range(n):
            b.add(work.s(f"child-{tag}", i, seconds))
    return b.id


@job(queue="default", retries=0)
def add_more(tag: str, n: int) -> None:
    """A member that adds n more members to its own batch."""
    b = current_batch()
    assert b is not None
    with b:
        for i in range(n):
            b.add(work.s(tag, 100 + i))


@job(queue="default", retries=0)
def spawn_flagged_child(flag: str) -> None:
    """A member whose child batch has one member that dies while test:<flag> is set."""
    with batch(description="flagged child") as b:
        b.add(fails_while_flagged.s(flag))
        b.add(work.s("flagged", 1))
