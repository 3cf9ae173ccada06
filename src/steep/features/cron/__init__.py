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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from steep import hooks, options
from steep import settings as steep_settings

if TYPE_CHECKING:
    from steep.keys import Keys
    from steep.registry import JobFunction
    from steep.settings import Settings

from steep.features.cron.entry import (
    ALIASES,
    DEFAULT_GRACE,
    ENTRY_KEYS,
    MAX_TICKS,
    MISSED,
    PUBLISH_EVERY,
    CronEntry,
    CronProblem,
    check_schedule,
    entries,
    entries_from_config,
    envelope,
    next_tick,
    prev_tick,
    register,
    resolve,
    tick_job_id,
    ticks_between,
    unregister,
    zone,
)
from steep.features.cron.ticker import CronTicker

__all__ = [
    "ALIASES",
    "DEFAULT_GRACE",
    "ENTRY_KEYS",
    "MAX_TICKS",
    "MISSED",
    "PUBLISH_EVERY",
    "CronEntry",
    "CronProblem",
    "CronTicker",
    "check_schedule",
    "entries",
    "entries_from_config",
    "envelope",
    "next_tick",
    "prev_tick",
    "register",
    "resolve",
    "tick_job_id",
    "ticks_between",
    "unregister",
    "zone",
]


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


class _CronKeywords(options.Feature):
    """`@job(cron="0 3 * * *", timezone=..., missed=..., grace=..., cron_args=...,
    cron_kwargs=...)`: the job is also enqueued on that schedule."""

    name = "cron"
    keywords = ("cron", "timezone", "missed", "grace", "cron_args", "cron_kwargs")

    def registering(self, fn: Callable[..., Any], keywords: dict[str, Any]) -> Callable[..., Any]:
        if "cron" not in keywords:
            raise TypeError(f"@job: {', '.join(keywords)} only go with cron=...")
        return fn

    def registered(self, function: JobFunction[Any, Any], keywords: dict[str, Any]) -> None:
        register(function, **keywords)


hooks.register(_CronHook())
options.register(_CronKeywords())
steep_settings.register_check("cron", _check_table)
