"""Jobs for tests/test_testing.py: what an application's tests would exercise."""

from __future__ import annotations

from datetime import date
from typing import Any

from steep import batch, current_job, job

SEEN: list[tuple[str, int]] = []


@job(queue="mail", result_ttl=60)
def send_welcome(user_id: int, day: date) -> str:
    ctx = current_job()
    assert ctx is not None and isinstance(day, date)  # converted back, as on a worker
    SEEN.append((ctx.queue, ctx.attempt))
    return f"welcome {user_id} on {day.isoformat()}"


@job(result_ttl=60)
async def count_words(text: str) -> int:
    assert current_job() is not None
    return len(text.split())


@job(result_ttl=60)
def sign_up(user_id: int) -> int:
    # a job that enqueues another: inline runs it at once, fake records it, drain runs it
    send_welcome.enqueue(user_id, date(2026, 12, 1))
    return user_id


@job(retries=0, result_ttl=60)
def broken(reason: str) -> None:
    raise ValueError(reason)


# batches, chains and groups in inline and fake mode: these keep what they saw in memory
REPORTS: list[tuple[str, Any]] = []


@job(retries=0)
def double(x: int) -> int:
    return 2 * x


@job(retries=0)
def add(x: int, y: int) -> int:
    return x + y


@job(retries=0)
def fails_for(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"{x} fails on purpose")
    return x


@job(retries=0)
def report(status: dict[str, Any], label: str) -> str:
    REPORTS.append((label, status))
    return f"{label}: {status['succeeded']}/{status['total']}"


@job(retries=0)
def total(results: list[int]) -> int:
    REPORTS.append(("total", results))
    return sum(results)


@job(retries=0)
def fan_out(n: int) -> int:
    """A member that makes a child batch of its own (a child of the member's batch)."""
    with batch(on_success=report.s("child")) as child:
        for i in range(n):
            child.add(double.s(i))
    return n
