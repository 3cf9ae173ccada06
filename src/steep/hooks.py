"""Worker-side hooks: how built-in features (uniqueness, rate limits, batches,
expiry...) take part in a job's run without weighing on jobs that do not use them.

A feature registers one `Hook`. For each claimed job the worker asks every hook
whether it `concerns` the job (a cheap look at the envelope and the job's options);
only those hooks are called, in registration order:

1. `before_run` — before the job's code; may return a verdict instead of running it:
   `Defer(delay)` puts it back in the scheduled set without spending an attempt
   (a rate limit), `Discard(reason)` drops it (it expired). When a hook returns a
   verdict, the hooks before it get `after_run` with that verdict on the outcome, so
   they can give back what they took (a concurrency lease).
2. `after_run` — after the job's code, before its settlement is written. The worker may
   die right after, so the job can run again and `after_run` be called again: it must be
   idempotent (record "member X finished" in a set, not "one more finished").
3. `after_settle` — after the settlement is written (succeeded, retrying, dead or
   discarded). Lost if the worker dies in between: anything done here must also have a
   fallback (a lock with a TTL, a sweep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

    from steep.context import JobContext
    from steep.job import Envelope
    from steep.registry import JobFunction
    from steep.worker.executor import Outcome


@dataclass(frozen=True, slots=True)
class Defer:
    """Not now: back to the scheduled set in `delay` seconds, no attempt spent."""

    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Never: drop the job unrun; `counter` names the stats counter it is counted in."""

    reason: str
    message: str
    counter: str = "discarded"


Verdict = Defer | Discard


class Hook:
    """Base class of a feature's worker hooks; override what the feature needs."""

    name = "hook"

    def concerns(self, envelope: Envelope, function: JobFunction[Any, Any] | None) -> bool:
        return False

    async def before_run(
        self, redis: redis.asyncio.Redis, envelope: Envelope, ctx: JobContext
    ) -> Verdict | None:
        return None

    async def after_run(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        return None

    async def after_settle(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        return None


_HOOKS: list[Hook] = []


def register(hook: Hook) -> Hook:
    """Add a feature's hook (once per name; a second registration replaces the first)."""
    for i, existing in enumerate(_HOOKS):
        if existing.name == hook.name:
            _HOOKS[i] = hook
            return hook
    _HOOKS.append(hook)
    return hook


def hooks_for(envelope: Envelope, function: JobFunction[Any, Any] | None) -> tuple[Hook, ...]:
    if not _HOOKS:
        return ()
    return tuple(h for h in _HOOKS if h.concerns(envelope, function))
