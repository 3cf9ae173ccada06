"""Ticking, in every worker process: enqueue each due tick of the entries it knows, once
across all workers (scripts/cron_tick.lua), and publish the entries for the CLI and the
dashboard."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

    from steep.keys import Keys
    from steep.options import JobOptions
    from steep.settings import Settings

from steep.features.cron.entry import (
    PUBLISH_EVERY,
    CronEntry,
    entries,
    envelope,
    next_tick,
    prev_tick,
    resolve,
    tick_job_id,
    ticks_between,
    zone,
)

log = logging.getLogger("steep.cron")

# -- ticking, in every worker process ---------------------------------------------------


class _Plan:
    """One entry as one worker ticks it: its description, keys and what it last saw."""

    __slots__ = ("description", "entry", "jobs", "key", "last", "next_at", "queued")

    def __init__(self, entry: CronEntry, opts: JobOptions, keys: Keys) -> None:
        self.entry = entry
        self.description = entry.describe(opts)
        qk = keys.queue(opts.queue)
        self.key, self.queued, self.jobs = qk.cron(entry.name), qk.queued, qk.jobs
        self.last: float | None = None  # newest tick handled (s), as the last call saw it
        self.next_at = 0.0  # nothing to do before this time


class CronTicker:
    """Enqueues the due ticks of the entries one worker process knows.

    Called from the worker's schedule loop. Between ticks it costs one comparison per
    entry; at a tick, one script call per entry per worker process (only one of them
    enqueues), and every PUBLISH_EVERY seconds one write of the entries' descriptions.
    """

    def __init__(self, plans: list[_Plan], keys: Keys) -> None:
        self.plans = plans
        self.keys = keys
        self.published = 0.0

    @classmethod
    def for_worker(cls, settings: Settings, keys: Keys) -> CronTicker | None:
        known = entries(settings)
        if not known:
            return None
        return cls([_Plan(e, resolve(e), keys) for e in known], keys)

    async def tick(self, client: redis.asyncio.Redis) -> float:
        """Enqueue what is due; return when the next tick falls (epoch seconds)."""
        from steep.connection import RETRYABLE

        now = time.time()
        if now - self.published >= PUBLISH_EVERY:
            try:
                await self.publish(client)
            except RETRYABLE:
                raise
            except Exception:  # never let it stop the schedule loop (scheduled jobs, retries)
                log.exception("cannot publish the cron entries")
                self.published = now
        for plan in self.plans:
            if now >= plan.next_at:
                try:
                    await self._tick_one(client, plan, now)
                except RETRYABLE:
                    raise
                except Exception:
                    log.exception("cron entry %s: tick failed", plan.entry.name)
                    plan.next_at = now + 1.0  # try again soon, not in a busy loop
        return min(plan.next_at for plan in self.plans)

    async def publish(self, client: redis.asyncio.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for plan in self.plans:
            plan.description["seen"] = time.time()
            pipe.hset(self.keys.cron, plan.entry.name, json.dumps(plan.description))
        pipe.sadd(self.keys.queues, *{p.description["queue"] for p in self.plans})
        await pipe.execute()
        self.published = time.time()

    async def _tick_one(self, client: redis.asyncio.Redis, plan: _Plan, now: float) -> None:
        from steep.connection import SCRIPTS

        entry = plan.entry
        first = False
        last = plan.last
        if last is None:
            raw = await client.hget(plan.key, "last")  # type: ignore[misc]
            first = raw is None
            last = 0.0 if raw is None else int(raw) / 1000
        floor = now - entry.grace
        on_time = ticks_between(entry.schedule, entry.timezone, max(last, floor), now)
        if first:
            on_time = on_time[-1:]  # a new entry starts with its newest tick, if on time
        late = None
        if last < floor:
            late = prev_tick(entry.schedule, entry.timezone, floor)
            if late is not None and late <= last:
                late = None
        runs = list(on_time)
        skip_to = 0.0
        if late is not None:
            if entry.missed == "once" and not runs and not first:
                runs = [late]  # every missed tick together: one run now
            else:
                skip_to = late
        argv: list[Any] = [int(now * 1000), int(skip_to * 1000)]
        for tick in runs:
            meta = {"cron": entry.name, "tick": _iso(tick, entry.timezone)}
            job_id = tick_job_id(entry.name, tick)
            argv += (int(tick * 1000), job_id, envelope(plan.description, job_id, meta, now))
        added = await SCRIPTS.named("cron_tick").run_async(
            client, [plan.key, plan.queued, plan.jobs], argv
        )
        for job_id in added:
            log.info("cron %s: enqueued %s (%s)", entry.name, entry.job, job_id.decode())
        plan.last = max([last, skip_to, *runs])
        plan.next_at = next_tick(entry.schedule, entry.timezone, max(now, plan.last))


def _iso(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, zone(tz)).isoformat()
