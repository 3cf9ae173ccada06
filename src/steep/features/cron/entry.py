"""Cron entries: their schedules and time zones, where they come from (`@job(cron=...)`,
steep.toml's `[cron]` table), and the envelope of one tick's job."""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from steep.job import Envelope, encode_envelope

if TYPE_CHECKING:
    from steep.options import JobOptions
    from steep.registry import JobFunction
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
    return opts.replace(queue=entry.queue) if entry.queue else opts


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
