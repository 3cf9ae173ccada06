"""Periodic jobs (docs/cron.md): one on the decorator, two named in steep.toml."""

from __future__ import annotations

from steep import current_job, job


@job(cron="0 3 * * *", timezone="Europe/Berlin", cron_args=(7,), result_ttl=86400)
def nightly_report(days: int) -> str:
    """Every night at 03:00 Berlin time, summer and winter; one catch-up run after downtime."""
    ctx = current_job()
    tick = ctx.meta.get("tick") if ctx else None
    print(f"report over {days} days (tick {tick or 'triggered by hand'})", flush=True)
    return f"report over {days} days"


@job(queue="low")
def cleanup(older_than_days: int) -> None:
    print(f"cleanup: removing records older than {older_than_days} days", flush=True)


@job
def pulse() -> None:
    ctx = current_job()
    print(f"pulse at {ctx.meta.get('tick') if ctx else '?'}", flush=True)
