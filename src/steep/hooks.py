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

Two more extension points serve features with a duty of their own:

- `settles(outcome)` / `settle(settler, outcome)` — the hook writes this run's
  settlement itself instead of the success/retry/dead path (an iterable job stopped at
  a step boundary goes back to its queue or is parked; no attempt spent).
- `ticker(settings, keys)` — something the worker's schedule loop calls next to the
  promotion of scheduled jobs, returning when it is next due (cron's ticks). Built once
  per process; the supervisor builds it too, to refuse a broken configuration at start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from steep.errors import JobTimeout

if TYPE_CHECKING:
    import redis.asyncio

    from steep.context import JobContext
    from steep.job import Envelope
    from steep.keys import Keys, QueueKeys
    from steep.registry import JobFunction
    from steep.settings import Settings


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


@dataclass(slots=True)
class Outcome:
    """One run of one claimed job, as the worker settles it and the hooks see it."""

    queue: str
    job_id: str
    payload: bytes
    envelope: Envelope | None
    function: JobFunction[Any, Any] | None
    ok: bool = False
    value: Any = None
    exc: BaseException | None = None
    # "" for an ordinary failure of the job's code; otherwise why it could not
    # run at all (these go straight to the dead set)
    reason: str = ""
    duration: float = 0.0
    stuck: bool = False
    # the feature hooks concerned with this job (steep.hooks), and whether their
    # after_run has been called
    hooks: tuple[Hook, ...] = ()
    hooks_ran: bool = False
    # set when a hook decided the job does not run now (deferred) or at all
    verdict: Defer | Discard | None = None

    @property
    def name(self) -> str:
        return self.envelope.name if self.envelope else "?"

    @property
    def retryable(self) -> bool:
        if self.reason or self.function is None or self.exc is None:
            return False
        return isinstance(self.exc, (self.function.default_options.retry_on, JobTimeout))

    @property
    def will_retry(self) -> bool:
        """A failed attempt that will be retried (so the job is not finished yet)."""
        return (
            not self.ok
            and self.verdict is None
            and self.retryable
            and self.envelope is not None
            and self.envelope.attempt + 1 <= self.envelope.retries
        )

    async def run_after_hooks(self, redis: Any) -> None:
        """Each concerned hook's after_run, once (see steep.hooks)."""
        if self.hooks and not self.hooks_ran:
            for hook in self.hooks:
                await hook.after_run(redis, self)
            self.hooks_ran = True


class Settling(Protocol):
    """What a hook that writes a run's settlement itself (`Hook.settle`) gets from the
    worker process: its id, its queues' keys, and a way to write through trouble."""

    worker_id: str
    qkeys: Mapping[str, QueueKeys]

    async def with_retries(
        self, outcome: Outcome, doing: str, step: Callable[[Any], Awaitable[Any]]
    ) -> bool:
        """Run `step(redis)` through connection trouble; False if it could not be done
        (the job then stays in flight and runs again later: nothing is lost)."""
        ...


class Ticker(Protocol):
    """A periodic duty run by every worker process's schedule loop."""

    async def tick(self, redis: redis.asyncio.Redis) -> float | None:
        """Do what is due; return when this is next due (epoch seconds), or None."""


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

    def settles(self, outcome: Outcome) -> bool:
        """True when this hook writes the outcome's settlement itself (`settle`)."""
        return False

    async def settle(self, settler: Settling, outcome: Outcome) -> None:
        raise NotImplementedError

    def ticker(self, settings: Settings, keys: Keys) -> Ticker | None:
        """The periodic duty this feature gives each worker process, or None."""
        return None


_HOOKS: list[Hook] = []
# the hooks that look at each job (those that override `concerns`): a ticker-only
# hook costs a job nothing
_JOB_HOOKS: list[Hook] = []


def register(hook: Hook) -> Hook:
    """Add a feature's hook (once per name; a second registration replaces the first)."""
    for i, existing in enumerate(_HOOKS):
        if existing.name == hook.name:
            _HOOKS[i] = hook
            break
    else:
        _HOOKS.append(hook)
    _JOB_HOOKS[:] = [h for h in _HOOKS if type(h).concerns is not Hook.concerns]
    return hook


def registered() -> tuple[Hook, ...]:
    return tuple(_HOOKS)


def tickers(settings: Settings, keys: Keys) -> list[Ticker]:
    """Every registered feature's periodic duty for one worker process."""
    return [t for hook in _HOOKS if (t := hook.ticker(settings, keys)) is not None]


def hooks_for(envelope: Envelope, function: JobFunction[Any, Any] | None) -> tuple[Hook, ...]:
    if not _JOB_HOOKS:
        return ()
    return tuple(h for h in _JOB_HOOKS if h.concerns(envelope, function))
