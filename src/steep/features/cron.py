"""Periodic jobs: cron entries, their ticks, and how each tick is enqueued exactly once.

Entries come from `@job(cron=...)` (registered when the job's module is imported) and from
the `[cron]` table of steep.toml. Every worker process ticks every entry it knows from its
schedule loop. Deciding that a tick is due and not yet enqueued, and pushing its job, are
one Lua call (scripts/cron_tick.lua) on the entry's state hash, which lives in the target
queue's slot: any number of workers on any number of machines enqueue each tick once.
Workers also publish the entries they know (`<ns>:cron`), so the CLI and the dashboard can
list them without importing the jobs. See docs/cron.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from steep import hooks
from steep import settings as steep_settings
from steep.job import Envelope, encode_envelope

if TYPE_CHECKING:
    import redis.asyncio

    from steep.keys import Keys
    from steep.registry import JobFunction, JobOptions
    from steep.settings import Settings

log = logging.getLogger("steep.cron")

MISSED = ("once", "skip")
DEFAULT_GRACE = 60.0
# at most this many on-time ticks are enqueued by one call (a long grace on a schedule
# that fires every second); older ones count as missed
MAX_TICKS = 1000
# how often a worker republishes its entries in `<ns>:cron` (and an entry not republished
# for three times this long is shown as stale)
PUBLISH_EVERY = 30.0
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
ENTRY_KEYS = ("job", "schedule", "timezone", "queue", "args", "kwargs", "missed", "grace")
_NAME = re.compile(r"\S+")


class CronProblem(ValueError):
    """A bad cron entry: what a value must be, what it was, and its path under `[cron]`."""

    def __init__(self, what: str, got: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(what, got)
        self.what, self.got, self.path = what, got, path

    def __str__(self) -> str:
        where = f"cron entry '{self.path[0]}': " if self.path else ""
        key = f"'{self.path[-1]}' " if len(self.path) > 1 else ""
        return f"{where}{key}must be {self.what}, got {self.got}"


# -- schedules ---------------------------------------------------------------------------


def check_schedule(expr: Any) -> str:
    """The expression (aliases expanded) if cronsim accepts it, else CronProblem."""
    from cronsim import CronSim, CronSimError

    what = "a cron expression: 5 fields (minute hour day month weekday), 6 with seconds first"
    if not isinstance(expr, str):
        raise CronProblem(what, type(expr).__name__)
    text = ALIASES.get(expr.strip().lower(), expr.strip())
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    except (CronSimError, ValueError, KeyError) as exc:
        raise CronProblem(what, f"{expr!r} ({exc or 'invalid'})") from None
    return text


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The time zone `name` (IANA, e.g. 'Europe/Berlin'), or CronProblem naming a close match."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        import zoneinfo

        match = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
        hint = f" (did you mean '{match[0]}'?)" if match else ""
        raise CronProblem("an IANA time zone such as 'Europe/Berlin'", f"{name!r}{hint}") from None


def next_tick(schedule: str, tz: str, after: float) -> float:
    """The first tick strictly after `after` (epoch seconds), on the wall clock of `tz`."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(int(after), zone(tz))
    return next(CronSim(schedule, start)).timestamp()


def prev_tick(schedule: str, tz: str, at: float) -> float | None:
    """The newest tick at or before `at`, or None if there is none (cronsim gives up)."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(int(at) + 1, zone(tz))
    try:
        return next(CronSim(schedule, start, reverse=True)).timestamp()
    except StopIteration:
        return None


def ticks_between(schedule: str, tz: str, after: float, until: float) -> list[float]:
    """Ticks in (after, until], oldest first, at most the newest MAX_TICKS of them."""
    from cronsim import CronSim

    start = max(after, until - 366 * 86400)
    out: list[float] = []
    for moment in CronSim(schedule, datetime.fromtimestamp(int(start), zone(tz))):
        ts = moment.timestamp()
        if ts > until:
            break
        if ts > after:
            out.append(ts)
            if len(out) > MAX_TICKS:
                out.pop(0)
    return out


def tick_job_id(entry: str, tick: float) -> str:
    """The job id of one tick: the tick's time in the id's time part (ids still sort by
    time), then a digest of the entry's name. The same tick always gets the same id."""
    digest = hashlib.sha1(entry.encode()).hexdigest()[:12]
    return f"{round(tick * 1_000_000):014x}{digest}"


# -- entries -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CronEntry:
    """One periodic job: which job, when, with which arguments, and how to treat misses."""

    name: str
    job: str  # the registered job name
    schedule: str
    timezone: str = "UTC"
    queue: str | None = None  # None: the job's own queue
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    missed: str = "once"  # a tick no worker saw within `grace`: run it once, or skip it
    grace: float = DEFAULT_GRACE  # seconds a tick may be late and still count as on time
    source: str = "steep.toml"

    def __post_init__(self) -> None:
        path = (self.name,)
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise CronProblem("a non-empty name without spaces", repr(self.name), path)
        if not isinstance(self.job, str) or not self.job:
            raise CronProblem("a job name like 'app.jobs.report'", repr(self.job), (*path, "job"))
        try:
            object.__setattr__(self, "schedule", check_schedule(self.schedule))
            zone(self.timezone)
        except CronProblem as exc:
            key = "schedule" if exc.what.startswith("a cron") else "timezone"
            raise CronProblem(exc.what, exc.got, (*path, key)) from None
        if self.queue is not None and (
            not isinstance(self.queue, str) or not re.fullmatch(r"[^\s{}:]+", self.queue)
        ):
            raise CronProblem("a queue name", repr(self.queue), (*path, "queue"))
        if self.missed not in MISSED:
            raise CronProblem("'once' or 'skip'", repr(self.missed), (*path, "missed"))
        grace = self.grace
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace > 0:
            raise CronProblem("a number of seconds > 0", repr(grace), (*path, "grace"))
        object.__setattr__(self, "grace", float(grace))
        if not isinstance(self.args, list | tuple):
            raise CronProblem("an array", type(self.args).__name__, (*path, "args"))
        object.__setattr__(self, "args", tuple(self.args))
        if not isinstance(self.kwargs, Mapping):
            raise CronProblem("a table", type(self.kwargs).__name__, (*path, "kwargs"))
        try:
            encode_envelope(Envelope("", self.job, "", list(self.args), dict(self.kwargs)))
        except TypeError as exc:
            raise CronProblem("JSON-encodable arguments", str(exc), (*path, "args")) from None

    def describe(self, opts: JobOptions) -> dict[str, Any]:
        """What workers publish in `<ns>:cron`: enough to list the entry and to trigger it."""
        return {
            "name": self.name,
            "job": self.job,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "queue": opts.queue,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "missed": self.missed,
            "grace": self.grace,
            "source": self.source,
            "retries": opts.retries,
            "timeout": opts.timeout,
            "result_ttl": opts.result_ttl,
            "tags": list(opts.tags),
            "seen": time.time(),
        }


def entries_from_config(table: Any) -> tuple[CronEntry, ...]:
    """The `[cron]` table of steep.toml (name -> entry table), checked; CronProblem on error."""
    if isinstance(table, tuple) and all(isinstance(e, CronEntry) for e in table):
        return table  # already checked (settings are re-checked on every replace)
    if not isinstance(table, Mapping):
        raise CronProblem("a table of named entries ([cron.NAME])", type(table).__name__)
    out = []
    for name, spec in table.items():
        if not isinstance(spec, Mapping):
            raise CronProblem("a table with job and schedule", type(spec).__name__, (name,))
        for key in spec:
            if key not in ENTRY_KEYS:
                match = difflib.get_close_matches(key, ENTRY_KEYS, n=1)
                hint = f" (did you mean '{match[0]}'?)" if match else ""
                raise CronProblem(
                    "one of " + ", ".join(ENTRY_KEYS), f"an unknown key{hint}", (name, key)
                )
        for key in ("job", "schedule"):
            if key not in spec:
                raise CronProblem(f"a table with '{key}'", "a table without it", (name,))
        out.append(CronEntry(name=name, source="steep.toml", **spec))
    return tuple(out)


_DECORATED: dict[str, CronEntry] = {}


def register(
    function: JobFunction[Any, Any],
    cron: str,
    timezone: str = "UTC",
    missed: str = "once",
    grace: float = DEFAULT_GRACE,
    cron_args: Sequence[Any] = (),
    cron_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Record `@job(cron=...)`; a bad value raises ValueError naming the job."""
    try:
        entry = CronEntry(
            name=function.name,
            job=function.name,
            schedule=cron,
            timezone=timezone,
            missed=missed,
            grace=grace,
            args=tuple(cron_args),
            kwargs=dict(cron_kwargs or {}),
            source="decorator",
        )
    except CronProblem as exc:
        key = {"schedule": "cron", "args": "cron_args", "kwargs": "cron_kwargs"}
        name = key.get(exc.path[-1], exc.path[-1]) if len(exc.path) > 1 else "name"
        message = f"@job {function.name}: {name} must be {exc.what}, got {exc.got}"
        raise ValueError(message) from None
    _DECORATED[entry.name] = entry


def unregister(name: str) -> None:
    """Forget a decorated entry in this process (tests, or code that swaps schedules)."""
    _DECORATED.pop(name, None)


def entries(settings: Settings) -> list[CronEntry]:
    """Every entry this process knows: decorated jobs, then steep.toml's `[cron]`."""
    from steep.settings import ConfigError

    found = dict(_DECORATED)
    for entry in settings.cron:
        if entry.name in found:
            raise ConfigError(
                f"cron entry '{entry.name}' in steep.toml has the name of a job "
                "decorated with @job(cron=...): rename the entry"
            )
        found[entry.name] = entry
    return list(found.values())


def resolve(entry: CronEntry) -> JobOptions:
    """The options a tick's job gets: the job's own, with the entry's queue if it has one."""
    import dataclasses

    from steep.errors import UnknownJob
    from steep.registry import import_job
    from steep.settings import ConfigError

    try:
        function = import_job(entry.job)
    except (UnknownJob, ImportError) as exc:
        raise ConfigError(
            f"cron entry '{entry.name}': cannot find job {entry.job!r} ({exc})"
        ) from None
    opts = function.default_options
    return dataclasses.replace(opts, queue=entry.queue) if entry.queue else opts


def envelope(
    description: Mapping[str, Any], job_id: str, meta: dict[str, Any], now: float
) -> bytes:
    """The encoded job of one run, from an entry's published description."""
    env = Envelope(
        id=job_id,
        name=description["job"],
        queue=description["queue"],
        args=list(description["args"]),
        kwargs=dict(description["kwargs"]),
        retries=description["retries"],
        timeout=description["timeout"],
        result_ttl=description["result_ttl"],
        enqueued_at=now,
        meta=meta,
    )
    if description["tags"]:
        env.tags = list(description["tags"])
    return encode_envelope(env)


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
        added = await SCRIPTS.cron_tick.run_async(client, [plan.key, plan.queued, plan.jobs], argv)
        for job_id in added:
            log.info("cron %s: enqueued %s (%s)", entry.name, entry.job, job_id.decode())
        plan.last = max([last, skip_to, *runs])
        plan.next_at = next_tick(entry.schedule, entry.timezone, max(now, plan.last))


def _iso(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, zone(tz)).isoformat()


class _CronHook(hooks.Hook):
    """Gives each worker process the ticker of the entries it knows."""

    name = "cron"

    def ticker(self, settings: Settings, keys: Keys) -> CronTicker | None:
        return CronTicker.for_worker(settings, keys)


def _check_table(value: Any) -> tuple[CronEntry, ...]:
    try:
        return entries_from_config(value)
    except CronProblem as exc:
        raise steep_settings.Invalid(exc.what, exc.got, exc.path) from None


hooks.register(_CronHook())
steep_settings.register_check("cron", _check_table)
