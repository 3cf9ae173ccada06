"""Expiring jobs: `expires_in=seconds` drops a job that has not started in time
(a reminder that is useless an hour late, a cache refresh superseded by the next).

The envelope carries the absolute deadline, `expires_at`, counted from the job's run
time (so a job scheduled for later gets its full window). A worker that claims the job
after the deadline discards it unrun (scripts/discard.lua): counted as `expired` in the
queue's stats, and a caller waiting on its result gets an `Expired` error. The deadline
applies to every attempt: a retry due after it is dropped too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from steep import hooks, options
from steep.job import Envelope

if TYPE_CHECKING:
    import redis.asyncio

    from steep.context import JobContext
    from steep.options import JobOptions


def stamp(envelope: Envelope, expires_in: float, at: float | None) -> None:
    """Set the deadline: `expires_in` seconds after the job's run time."""
    envelope.expires_at = max(envelope.enqueued_at, at or 0.0) + expires_in


class ExpiryHook(hooks.Hook):
    name = "expiry"

    def concerns(self, envelope: Envelope, function: Any) -> bool:
        return envelope.expires_at is not None

    async def before_run(
        self, redis: redis.asyncio.Redis, envelope: Envelope, ctx: JobContext
    ) -> hooks.Verdict | None:
        deadline = envelope.expires_at
        if deadline is not None and time.time() > deadline:
            when = datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds")
            return hooks.Discard("Expired", f"not started before it expired at {when}", "expired")
        return None


hooks.register(ExpiryHook())


class ExpiryOption(options.Feature):
    """`expires_in=seconds`: the envelope carries the absolute deadline."""

    name = "expiry"
    options = {"expires_in": None}

    def check(self, values: dict[str, Any]) -> bool:
        expires_in = values["expires_in"]
        if expires_in is not None and expires_in <= 0:
            raise ValueError(f"expires_in must be > 0 seconds, got {expires_in}")
        return expires_in is not None

    def stamp(self, envelope: Envelope, opts: JobOptions, at: float | None) -> None:
        stamp(envelope, opts.get("expires_in"), at)


options.register(ExpiryOption())
