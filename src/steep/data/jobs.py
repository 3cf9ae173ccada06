"""`steep.data.copy_database`: a copy as a job, for a weekly copy from `[cron]`.

    [cron.staging_data]
    job = "steep.data.copy_database"
    schedule = "0 4 * * 1"                # Mondays at 04:00
    args = ["production", "staging"]

Registered when steep is imported, so any `steep worker` runs it. The job is not retried:
a copy that failed left the target as it was, and the next tick tries again.
"""

from __future__ import annotations

from typing import Any

from steep.registry import job

JOB_NAME = "steep.data.copy_database"


@job(name=JOB_NAME, retries=0, timeout=None, result_ttl=30 * 24 * 3600)
def copy_database(from_env: str, to_env: str) -> dict[str, Any]:
    """Copy `from_env`'s database over `to_env`'s, scrubbed; returns what was done."""
    from steep.data.copy import copy

    result = copy(from_env, to_env)
    report = result.report
    return {
        "tables": result.plan.counts,
        "steps": result.steps,
        "scrubbed_rows": report.rows if report else {},
        "scrub_seconds": round(report.seconds, 3) if report else 0,
        "survivors": report.survivors if report else {},
    }
