"""The worker side of rate limits (steep.features.limits): take a job's limits before it
runs, defer it when one refuses, keep its leases alive while it runs, give them
back when it ends.

Registered with steep.hooks as soon as a process declares a limiter, so a
worker whose app uses no limits pays nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio

from steep import hooks
from steep.connection import RETRYABLE
from steep.features.limits.limiters import (
    DECLARED,
    Concurrency,
    Limiter,
    record_definition,
    renew_until,
)

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.hooks import Outcome
    from steep.job import Envelope
    from steep.registry import JobFunction

log = logging.getLogger("steep.limits")


@dataclass(slots=True)
class _Held:
    """What one running job holds: its slots, and the task renewing its leases."""

    slots: list[tuple[Limiter, str]]
    keeper: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def limits_of(envelope: Envelope, function: JobFunction[Any, Any] | None) -> list[Limiter] | None:
    """The job's limiters, concurrency ones first; None when the envelope names one
    this process does not know (an app deployed unevenly)."""
    names = envelope.meta.get("limits") if envelope.meta else None
    if names is not None:
        found = [DECLARED.get(n) for n in names]
        if any(limiter is None for limiter in found):
            return None
        limiters: list[Limiter] = found  # type: ignore[assignment]
    elif function is not None and function.default_options.get("limits"):
        limiters = list(function.default_options.get("limits"))
    else:
        return []
    return sorted(limiters, key=lambda limiter: not isinstance(limiter, Concurrency))


class LimitsHook(hooks.Hook):
    """Takes every limit of a job before it runs; defers it when one refuses."""

    name = "limits"

    # how long a job waits when it names a limiter this worker does not know
    UNKNOWN_DELAY = 60.0

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def concerns(self, envelope: Envelope, function: JobFunction[Any, Any] | None) -> bool:
        if envelope.meta and "limits" in envelope.meta:
            return bool(envelope.meta["limits"])
        return function is not None and bool(function.default_options.get("limits"))

    async def before_run(
        self, redis: redis.asyncio.Redis, envelope: Envelope, ctx: JobContext
    ) -> hooks.Verdict | None:
        from steep.registry import lookup_local

        limiters = limits_of(envelope, lookup_local(envelope.name))
        if limiters is None:
            unknown = [n for n in envelope.meta["limits"] if n not in DECLARED]
            log.error(
                "job %s %s names limiters this worker does not declare: %s; "
                "deferring it until a worker that knows them runs it",
                envelope.id,
                envelope.name,
                ", ".join(unknown),
            )
            return hooks.Defer(self.UNKNOWN_DELAY, f"unknown limiters {unknown}")
        deferred = int(envelope.meta.get("deferred", 0))
        taken: list[tuple[Limiter, str]] = []
        try:
            for limiter in limiters:
                await record_definition(redis, limiter)
                holder = limiter._holder(envelope.id)
                ok, info = await limiter._atry(redis, holder)
                if not ok:
                    await self._release(redis, _Held(taken), unused=True)
                    return hooks.Defer(
                        limiter.refusal_delay(info, deferred), limiter.refusal_reason(info)
                    )
                taken.append((limiter, holder))
        except Exception as exc:
            # An error here must not leave the job half-started: it waits and asks
            # again (the deferral is written with retries); what it took is given
            # back, or expires.
            if not isinstance(exc, RETRYABLE):
                log.exception("cannot take the limits of job %s", envelope.id)
            await self._release(redis, _Held(taken), unused=True)
            return hooks.Defer(
                random.uniform(1.0, 2.0), f"cannot take limits: {type(exc).__name__}: {exc}"
            )
        held = _Held(taken)
        self._held[envelope.id] = held
        leases = [(lim, h) for lim, h in taken if isinstance(lim, Concurrency)]
        job_task = asyncio.current_task()
        if leases and job_task is not None:
            held.keeper = asyncio.create_task(renew_until(redis, leases, job_task))
            # the job's task ends when its code does (or it is cancelled): give the
            # leases back then, even if after_run is never called (shutdown, cancel)
            job_task.add_done_callback(lambda _: self._released_later(redis, envelope.id))
        return None

    def _released_later(self, redis: redis.asyncio.Redis, job_id: str) -> None:
        held = self._held.pop(job_id, None)
        if held is not None:
            task = asyncio.get_running_loop().create_task(self._release(redis, held, False))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def after_run(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        held = self._held.pop(outcome.job_id, None)
        if held is not None:
            # a job another hook stopped did not use its window slots either
            await self._release(redis, held, outcome.verdict is not None)

    @staticmethod
    async def _release(redis: redis.asyncio.Redis, held: _Held, unused: bool) -> None:
        if held.keeper is not None:
            held.keeper.cancel()
        for limiter, holder in held.slots:
            if unused or isinstance(limiter, Concurrency):
                try:
                    await limiter._agive_back(redis, holder)
                except Exception as exc:  # a lost connection, a closed loop at exit
                    # the lease expires on its own within `lease` seconds
                    log.warning("cannot release %s on %r: %s", holder, limiter.name, exc)


hooks.register(LimitsHook())
