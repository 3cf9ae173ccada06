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

from typing import TYPE_CHECKING, Any

from steep import options
from steep.features.limits.limiters import (
    DECLARED,
    Concurrency,
    Limiter,
    LimitTimeout,
    Window,
    record_definition,
    renew_until,
)
from steep.features.limits.limiters import (
    _recorded as _recorded,  # tests clear it
)
from steep.job import Envelope

if TYPE_CHECKING:
    from steep.options import JobOptions

__all__ = [
    "DECLARED",
    "Concurrency",
    "LimitTimeout",
    "Limiter",
    "LimitsOption",
    "Window",
    "record_definition",
    "renew_until",
]


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
