"""Rate limits: named limiters shared by every process and machine on one Redis.

Two kinds, declared once in the app's code and named on jobs with
`@job(limits=[...])` (or used directly with `acquire()` / `aacquire()`):

- `Concurrency(name, limit, lease=...)`: at most `limit` holders at once. A holder
  takes a lease that expires unless renewed, so a worker that dies gives its slots
  back after `lease` seconds; a running job's lease is renewed every `lease / 3`.
- `Window(name, limit, per=...)`: at most `limit` admissions in any `per` seconds
  (a sliding log: exact, and an admission not used can be given back).

A job over a limit is not run: the worker defers it (back to the scheduled set,
no attempt spent) with a delay the limiter derives, and goes on with other jobs
(steep.features.limits.hook). See docs/limits.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import redis
import redis.asyncio

from steep import options
from steep.connection import RETRYABLE, SCRIPTS, get_async_client, get_client, get_keys
from steep.errors import SteepError
from steep.job import Envelope, encode
from steep.keys import LimitKeys

if TYPE_CHECKING:
    from steep.options import JobOptions

log = logging.getLogger("steep.limits")

# Every limiter declared in this process, by name: a job's envelope may name its
# limits (`.options(limits=...)`), and the worker finds them here.
DECLARED: dict[str, Limiter] = {}


class LimitTimeout(SteepError):
    """`acquire()` waited its whole timeout and the limiter never admitted it."""


class Limiter:
    """What both kinds share: a name, a limit, and how to ask Redis for a slot."""

    kind: ClassVar[str] = ""

    def __init__(self, name: str, limit: int) -> None:
        if not isinstance(name, str) or not name or any(c in name for c in "{}: \t\n"):
            raise ValueError(f"invalid limiter name {name!r}: no braces, colons or spaces")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limiter {name!r}: limit must be a whole number >= 1, got {limit!r}")
        self.name = name
        self.limit = limit

    def _declare(self) -> None:
        known = DECLARED.get(self.name)
        if known is not None and known.definition() != self.definition():
            raise ValueError(
                f"limiter {self.name!r} is already declared as {known!r}; "
                f"one name, one definition (got {self!r})"
            )
        DECLARED[self.name] = self
        # a process that declares a limiter may run jobs limited by it
        import steep.features.limits.hook  # noqa: F401  (registers the worker hook)

    def keys(self) -> LimitKeys:
        return get_keys().limit(self.name)

    def definition(self) -> dict[str, Any]:
        """The JSON form recorded in Redis for tools that do not import the app."""
        raise NotImplementedError

    def _script(self) -> tuple[Any, list[str], list[Any]]:
        raise NotImplementedError

    def refusal_delay(self, info: int, deferred: int) -> float:
        """Seconds a refused job waits before it asks again (`info` is the script's)."""
        raise NotImplementedError

    def refusal_reason(self, info: int) -> str:
        raise NotImplementedError

    # -- one attempt, sync or async: (admitted, info) ---------------------------------

    def _holder(self, job_id: str | None) -> str:
        raise NotImplementedError

    async def _atry(self, client: redis.asyncio.Redis, holder: str) -> tuple[bool, int]:
        script, keys, argv = self._script()
        ok, info = await script.run_async(client, keys, [holder, *argv])
        return bool(ok), int(info)

    def _try(self, client: redis.Redis, holder: str) -> tuple[bool, int]:
        script, keys, argv = self._script()
        ok, info = script(client, keys, [holder, *argv])
        return bool(ok), int(info)

    async def _agive_back(self, client: redis.asyncio.Redis, holder: str) -> None:
        raise NotImplementedError

    def _give_back(self, client: redis.Redis, holder: str) -> None:
        raise NotImplementedError

    # -- direct use -------------------------------------------------------------------

    @contextlib.contextmanager
    def acquire(self, timeout: float | None = 30.0) -> Iterator[None]:
        """Hold a slot for the block; wait up to `timeout` s for one (LimitTimeout)."""
        client = get_client()
        _record_definition_sync(client, self)
        holder = self._holder(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        refusals = 0
        while True:
            ok, info = self._try(client, holder)
            if ok:
                break
            time.sleep(self._wait(info, refusals, deadline))
            refusals += 1
        renewer = _SyncRenewer(self, client, holder) if isinstance(self, Concurrency) else None
        try:
            yield
        finally:
            if renewer is not None:
                renewer.stop()
                self._give_back(client, holder)

    @contextlib.asynccontextmanager
    async def aacquire(self, timeout: float | None = 30.0) -> AsyncIterator[None]:
        """`acquire()` for async code: waits without blocking the event loop."""
        client = get_async_client()
        await record_definition(client, self)
        holder = self._holder(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        refusals = 0
        while True:
            ok, info = await self._atry(client, holder)
            if ok:
                break
            await asyncio.sleep(self._wait(info, refusals, deadline))
            refusals += 1
        keeper = None
        if isinstance(self, Concurrency):
            keeper = asyncio.create_task(renew_until(client, [(self, holder)], None))
        try:
            yield
        finally:
            if keeper is not None:
                keeper.cancel()
                await self._agive_back(client, holder)

    def _wait(self, info: int, refusals: int, deadline: float | None) -> float:
        delay = self.refusal_delay(info, refusals)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LimitTimeout(f"{self.refusal_reason(info)}; gave up waiting")
            delay = min(delay, left)
        return delay


class Concurrency(Limiter):
    """At most `limit` holders at once, across every process.

    A holder's lease expires `lease` seconds after it was taken or last renewed, so
    the slots of a worker that died come back on their own. Refused jobs back off
    from `backoff` s, doubling per deferral up to `max_backoff` s, with jitter.
    """

    kind = "concurrency"

    def __init__(
        self,
        name: str,
        limit: int,
        *,
        lease: float = 30.0,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        super().__init__(name, limit)
        if lease < 0.3:
            raise ValueError(f"limiter {name!r}: lease must be >= 0.3 s, got {lease!r}")
        if backoff <= 0 or max_backoff < backoff:
            raise ValueError(
                f"limiter {name!r}: need 0 < backoff <= max_backoff, "
                f"got backoff={backoff!r}, max_backoff={max_backoff!r}"
            )
        self.lease = float(lease)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._declare()

    def __repr__(self) -> str:
        return f"Concurrency({self.name!r}, {self.limit}, lease={self.lease:g})"

    def definition(self) -> dict[str, Any]:
        return {"kind": self.kind, "limit": self.limit, "lease": self.lease}

    def _holder(self, job_id: str | None) -> str:
        return job_id or f"direct:{os.urandom(8).hex()}"

    def _script(self) -> tuple[Any, list[str], list[Any]]:
        lk = self.keys()
        return (
            SCRIPTS.named("limit_concurrency"),
            [lk.leases, lk.stats],
            [
                self.limit,
                int(self.lease * 1000),
            ],
        )

    def refusal_delay(self, info: int, deferred: int) -> float:
        # nothing says when a slot frees: back off, so that waiting jobs ask less
        # and less often, and jitter so that they do not all ask at once
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(deferred, 30))
        return random.uniform(ceiling / 2, ceiling)

    def refusal_reason(self, info: int) -> str:
        return f"concurrency limit {self.name!r} is full ({info}/{self.limit} running)"

    async def _agive_back(self, client: redis.asyncio.Redis, holder: str) -> None:
        await client.zrem(self.keys().leases, holder)

    def _give_back(self, client: redis.Redis, holder: str) -> None:
        client.zrem(self.keys().leases, holder)

    async def _arenew(self, client: redis.asyncio.Redis, holders: Sequence[str]) -> int:
        return int(
            await SCRIPTS.named("limit_renew").run_async(
                client, [self.keys().leases], [int(self.lease * 1000), *holders]
            )
        )


class Window(Limiter):
    """At most `limit` admissions in any `per` seconds, across every process.

    A sliding log: each admission is one entry, kept for one period, so the count
    is exact at every instant (no burst of twice the limit at a window's edge), and a job
    admitted here but refused by another of its limits gives its entry back.
    Memory: `limit` entries. A refused job comes back when the oldest entry leaves
    the window, plus a spread that grows with its deferrals (see docs/limits.md).
    """

    kind = "window"

    def __init__(self, name: str, limit: int, *, per: float = 1.0) -> None:
        super().__init__(name, limit)
        if per < 0.01:
            raise ValueError(f"limiter {name!r}: per must be >= 0.01 s, got {per!r}")
        self.per = float(per)
        self._declare()

    def __repr__(self) -> str:
        return f"Window({self.name!r}, {self.limit}, per={self.per:g})"

    def definition(self) -> dict[str, Any]:
        return {"kind": self.kind, "limit": self.limit, "per": self.per}

    def _holder(self, job_id: str | None) -> str:
        return f"{job_id or 'direct'}:{os.urandom(6).hex()}"

    def _script(self) -> tuple[Any, list[str], list[Any]]:
        lk = self.keys()
        return SCRIPTS.named("limit_window"), [lk.log, lk.stats], [self.limit, int(self.per * 1000)]

    def refusal_delay(self, info: int, deferred: int) -> float:
        # `info` is when the next slot frees. Every job refused now would come back
        # at that same moment and all but one be refused again; spreading them over
        # up to one period (the more deferrals, the wider) keeps that herd small.
        spread = min(self.per, self.per / self.limit * 2 ** min(deferred, 30))
        return info / 1000 + random.uniform(0, spread)

    def refusal_reason(self, info: int) -> str:
        return (
            f"window limit {self.name!r} is used up ({self.limit} per {self.per:g} s); "
            f"a slot frees in {info / 1000:.2f} s"
        )

    async def _agive_back(self, client: redis.asyncio.Redis, holder: str) -> None:
        await client.zrem(self.keys().log, holder)

    def _give_back(self, client: redis.Redis, holder: str) -> None:
        client.zrem(self.keys().log, holder)


def declared(name: str) -> Limiter | None:
    """The limiter declared under `name` in this process, if any."""
    return DECLARED.get(name)


# -- recording definitions --------------------------------------------------------------

# A process writes a limiter's definition on first use, then again at most every
# RECORD_EVERY seconds (so a flushed or restored Redis gets it back soon).
RECORD_EVERY = 60.0
_recorded: dict[tuple[str, str], float] = {}


def _due_record(limiter: Limiter) -> tuple[str, str] | None:
    keys = get_keys()
    marker = (keys.namespace, limiter.name)
    last = _recorded.get(marker)
    if last is not None and time.monotonic() - last < RECORD_EVERY:
        return None
    _recorded[marker] = time.monotonic()
    return keys.limits, limiter.name


async def record_definition(client: redis.asyncio.Redis, limiter: Limiter) -> None:
    """Write the limiter's definition where `steep limits` finds it (see RECORD_EVERY)."""
    due = _due_record(limiter)
    if due is not None:
        await client.hset(*due, encode(limiter.definition()))  # type: ignore[misc]


def _record_definition_sync(client: redis.Redis, limiter: Limiter) -> None:
    due = _due_record(limiter)
    if due is not None:
        client.hset(*due, encode(limiter.definition()))


# -- lease renewal ----------------------------------------------------------------------


async def renew_until(
    client: redis.asyncio.Redis,
    leases: list[tuple[Concurrency, str]],
    until: asyncio.Future[Any] | None,
) -> None:
    """Renew `leases` every lease / 3 until `until` is done (or this task is cancelled).

    Two missed renewals still leave a third before a lease runs out, so a slow
    Redis round trip never lets a live holder's slot be taken.
    """
    interval = min(limiter.lease for limiter, _ in leases) / 3
    leases = list(leases)
    while leases:
        if until is None:
            await asyncio.sleep(interval)
        else:
            done, _ = await asyncio.wait({until}, timeout=interval)
            if done:
                return
        for limiter, holder in list(leases):
            try:
                if await limiter._arenew(client, [holder]):
                    leases.remove((limiter, holder))
                    log.warning(
                        "lease %s on limiter %r had expired before it was renewed "
                        "(event loop or Redis too slow for a %g s lease); "
                        "the limiter may admit one more than its limit meanwhile",
                        holder,
                        limiter.name,
                        limiter.lease,
                    )
            except RETRYABLE as exc:
                log.warning("cannot renew lease %s on %r: %s", holder, limiter.name, exc)


class _SyncRenewer:
    """Renews one lease from a daemon thread while a sync `with acquire()` block runs."""

    def __init__(self, limiter: Concurrency, client: redis.Redis, holder: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(limiter, client, holder), daemon=True, name="steep-lease"
        )
        self._thread.start()

    def _run(self, limiter: Concurrency, client: redis.Redis, holder: str) -> None:
        keys = [limiter.keys().leases]
        while not self._stop.wait(limiter.lease / 3):
            try:
                SCRIPTS.named("limit_renew")(client, keys, [int(limiter.lease * 1000), holder])
            except RETRYABLE as exc:
                log.warning("cannot renew lease %s on %r: %s", holder, limiter.name, exc)

    def stop(self) -> None:
        self._stop.set()


__all__ = ["Concurrency", "LimitTimeout", "Limiter", "Window", "declared"]


def _check_limits(values: dict[str, Any]) -> bool:
    limits = values["limits"]
    if limits is None:
        return False  # no say: the decorator's limits (if any) apply
    if isinstance(limits, Limiter):
        limits = (limits,)
    limits = tuple(limits)
    bad = [lim for lim in limits if not isinstance(lim, Limiter)]
    if bad:
        raise ValueError(
            f"limits must be limiters of steep.features.limits (Concurrency, Window), got {bad!r}"
        )
    values["limits"] = limits
    return True


class LimitsOption(options.Feature):
    """`limits=[...]`: the limiters that must all admit the job before it runs."""

    name = "limits"
    options = {"limits": None}

    def check(self, values: dict[str, Any]) -> bool:
        return _check_limits(values)

    def stamp(self, envelope: Envelope, opts: JobOptions, at: float | None) -> None:
        # named in the envelope so `.options(limits=...)` reaches the worker
        envelope.meta["limits"] = [limiter.name for limiter in opts.get("limits")]


options.register(LimitsOption())
