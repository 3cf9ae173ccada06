"""A job with `@job(cron=...)`, imported only by worker subprocesses in tests/test_cron.py
(never by the test process: its schedule would tick in every other test's workers)."""

from __future__ import annotations

from steep import job
from tests.cron_jobs import record_tick


@job(cron="* * * * * *", timezone="Europe/Berlin", cron_args=("every-second",))
def every_second(tag: str) -> None:
    record_tick.fn(tag)
