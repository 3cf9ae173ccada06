"""Jobs for tests/test_testing.py: what an application's tests would exercise."""

from __future__ import annotations

from datetime import date

from steep import current_job, job

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
