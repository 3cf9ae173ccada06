"""Job functions used by the tests (importable by worker subprocesses as `tests.jobs`)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from steep import current_job, job
from steep.connection import get_async_client, get_client


def mark(key: str, value: str) -> None:
    get_client().rpush(f"test:{key}", value)


@job(queue="default", result_ttl=60)
def add(a: int, b: int) -> int:
    return a + b


@job(queue="default", result_ttl=60)
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@job(queue="default")
def record(tag: str, i: int) -> None:
    """Counts each run: test:runs:<tag> (all runs) and test:seen:<tag> (distinct i)."""
    client = get_client()
    pipe = client.pipeline(transaction=False)
    pipe.incr(f"test:runs:{tag}")
    pipe.sadd(f"test:seen:{tag}", i)
    pipe.execute()


@job(queue="default")
def slow_record(tag: str, i: int, seconds: float) -> None:
    time.sleep(seconds)
    record(tag, i)


@job(queue="default")
async def async_record(tag: str, i: int, seconds: float = 0.0) -> None:
    if seconds:
        await asyncio.sleep(seconds)
    client = get_async_client()
    await client.incr(f"test:runs:{tag}")
    await client.sadd(f"test:seen:{tag}", i)


@job(queue="default", retries=3, backoff=0.05, result_ttl=60)
def fails_then_succeeds(tag: str, failures: int) -> int:
    ctx = current_job()
    assert ctx is not None
    mark(tag, f"attempt {ctx.attempt}")
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt} failed on purpose")
    return ctx.attempt


@job(queue="default", retries=2, backoff=0.05, result_ttl=60)
def always_fails(tag: str) -> None:
    ctx = current_job()
    mark(tag, f"attempt {ctx.attempt if ctx else '?'}")
    raise ValueError("this job always fails")


class Permanent(Exception):
    pass


@job(queue="default", retries=5, backoff=0.05, retry_on=(ConnectionError,), result_ttl=60)
def selective(tag: str, kind: str) -> None:
    mark(tag, kind)
    if kind == "transient":
        raise ConnectionError("transient")
    raise Permanent("permanent")


@job(queue="default", timeout=0.3, retries=0, result_ttl=60)
def sleeps_too_long_sync(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # pure-Python loop: the injected timeout can land
        time.sleep(0.01)
    return "finished"


@job(queue="default", timeout=0.3, retries=0, result_ttl=60)
async def sleeps_too_long_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "finished"


@dataclasses.dataclass
class Point:
    x: int
    when: datetime


@job(queue="default", result_ttl=60)
def typed(when: datetime, day: date, ident: UUID, amount: Decimal, point: Point) -> str:
    assert isinstance(when, datetime) and isinstance(day, date)
    assert isinstance(ident, UUID) and isinstance(amount, Decimal)
    assert isinstance(point, Point) and isinstance(point.when, datetime)
    return f"{when.isoformat()}|{day.isoformat()}|{ident}|{amount}|{point.x}"


@job(queue="default", result_ttl=60)
def returns_object() -> object:
    return object()


@job(queue="critical")
def on_critical(tag: str, i: int) -> None:
    mark(tag, f"critical {i}")


@job(queue="low")
def on_low(tag: str, i: int) -> None:
    mark(tag, f"low {i}")


@job(queue="default", result_ttl=60)
def whoami() -> int:
    return os.getpid()


@job(queue="default")
def hog_memory(mb: int, seconds: float) -> None:
    blob = bytearray(mb * 1024 * 1024)
    time.sleep(seconds)
    del blob


@job(queue="default", retries=3)
def spin(tag: str, seconds: float) -> None:
    """A sync job in pure Python (an injected exception can land)."""
    mark(tag, "started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    mark(tag, "finished")


@job(queue="default", result_ttl=60)
def sleepy(seconds: float) -> str:
    """A thread job that sleeps in short steps, so an injected cancel lands quickly."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "slept"


@job(queue="default", result_ttl=60)
async def async_sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@job(queue="default", result_ttl=60)
def read_meta(key: str) -> str | None:
    """Returns what an enqueue middleware stored under `key` in the job's meta."""
    ctx = current_job()
    assert ctx is not None
    return ctx.meta.get(key)


@job(queue="default", result_ttl=60)
async def async_read_meta(key: str) -> str | None:
    ctx = current_job()
    assert ctx is not None
    return ctx.meta.get(key)


@job(queue="default", retries=0, tags=("billing", "nightly"))
def tagged_fail(message: str) -> None:
    raise ValueError(message)


# -- rate limits (tests/test_limits.py) ----------------------------------------------------

from steep.features.limits import Concurrency, Window  # noqa: E402

exports_limit = Concurrency("test-exports", 3, lease=2.0, backoff=0.05, max_backoff=0.5)
api_limit = Window("test-api", 5, per=1.0)
solo_limit = Concurrency("test-solo", 1, lease=1.5, backoff=0.2, max_backoff=2.0)

# INCR the running count and raise the recorded maximum in one step
_ENTER = """local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n"""


def _record_run(prefix: str) -> None:
    ctx = current_job()
    assert ctx is not None
    r = get_client()
    r.rpush(f"{prefix}:attempts", ctx.attempt)
    r.rpush(f"{prefix}:deferred", int(ctx.meta.get("deferred", 0)))
    r.rpush(f"{prefix}:starts", repr(time.time()))


@job(queue="default", limits=[exports_limit], retries=3)
def limited_export(seconds: float) -> None:
    """Counts how many run at once (test:{export}:running, its maximum in
    test:{export}:max: one hash tag, so the script runs on a cluster too)."""
    r = get_client()
    _record_run("test:export")
    r.eval(_ENTER, 2, "test:{export}:running", "test:{export}:max")
    try:
        time.sleep(seconds)  # the work the limit protects
    finally:
        r.decr("test:{export}:running")
        r.incr("test:export:done")


@job(queue="default", limits=[api_limit], retries=3)
def limited_call() -> None:
    _record_run("test:api")


@job(queue="default", limits=[solo_limit], retries=3)
def solo_hold(seconds: float) -> None:
    """Holds the solo limiter on its first run only (a rerun returns), until the test pushes
    onto test:gate:solo-hold or `seconds` pass."""
    r = get_client()
    _record_run("test:solo-hold")
    if r.set("test:solo-hold:once", "1", nx=True):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:  # holding the slot is the point
            if r.blpop(["test:gate:solo-hold"], timeout=max(0.01, min(left, 5.0))):
                return


@job(queue="default", limits=[solo_limit], retries=3)
def solo_quick() -> None:
    _record_run("test:solo-quick")


def _wait_gate(tag: str) -> None:
    """Block until the test pushes onto test:gate:<tag> (at most 10 s)."""
    get_client().blpop([f"test:gate:{tag}"], timeout=10)


@job(queue="default", unique=True, result_ttl=60)
def unique_gated(tag: str) -> str:
    mark(tag, "started")
    _wait_gate(tag)
    return tag


@job(queue="default", unique=True, unique_until="started", result_ttl=60)
def unique_started_gated(tag: str) -> str:
    mark(tag, "started")
    _wait_gate(tag)
    return tag


@job(queue="default", unique_key=lambda account, reason="": f"account:{account}")
def sync_account(account: int, reason: str = "") -> None:
    mark(f"sync:{account}", reason)


@job(queue="default", unique=True, retries=0)
def unique_fails(tag: str) -> None:
    raise ValueError(f"{tag} fails on purpose")


@job(queue="default", unique=True, retries=1, backoff=0.05)
def unique_fails_once(tag: str) -> None:
    ctx = current_job()
    assert ctx is not None
    mark(tag, f"attempt {ctx.attempt}")
    if ctx.attempt == 1:
        _wait_gate(tag)
        raise ConnectionError("first attempt fails on purpose")


@job(queue="default")
def note(tag: str, label: str) -> None:
    """Appends `label` to test:<tag>: the order jobs ran in."""
    mark(tag, label)
