"""Job options (`JobOptions`), and the enqueue side's extension point: the options
that features declare, and what a feature does with them when a job is enqueued. (The
run side's extension point is `steep.hooks`.)

The core's own options (queue, retries, timeout, result_ttl, retry_on, backoff,
max_backoff, tags) are fields of `JobOptions`. Every other option a job can be given,
on `@job(...)` or per call with `.options(...)` (`unique=`, `limits=`, `priority=`,
`expires_in=`, ...), is declared by the feature that acts on it, by registering a
`Feature` (steep.features does, for the built-ins, when steep is imported):

- `options`: the names it declares, with their defaults;
- `check(values)`: validate and normalise the values one job was given (all of the
  feature's options, defaults filled in), in place; return whether the feature acts on
  the job at all. A bad value raises ValueError or TypeError naming the option;
- `stamp(envelope, opts, at)`: write what the worker needs into the envelope;
- `push` / `apush`: add the jobs with the feature's own script instead of the plain
  enqueue script (unique's lock, priority's sorted set); among the features a job uses,
  the one with the highest `push_rank` adds it;
- `keywords`, `registering`, `registered`: `@job` keywords that act once, when the
  function is registered, rather than per call (cron's schedule, iterable's driver).

A job that sets none of these options pays nothing for them: `JobOptions` resolves
them once, when it is made, into the tuple of features that act on the job.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from steep.job import Envelope, Job
    from steep.registry import JobFunction


class Feature:
    """Base class of a feature's enqueue side; override what the feature needs."""

    name = "feature"
    options: Mapping[str, Any] = {}
    keywords: tuple[str, ...] = ()
    push_rank = 0  # > 0: this feature adds the jobs that use it (push / apush)

    def __repr__(self) -> str:
        return f"<feature {self.name}>"

    def check(self, values: dict[str, Any]) -> bool:
        return True

    def stamp(self, envelope: Envelope, opts: JobOptions, at: float | None) -> None:
        return None

    def push(
        self,
        client: redis.Redis,
        envelopes: Sequence[Envelope],
        payloads: Sequence[bytes],
        opts: JobOptions,
        at: float | None,
    ) -> list[Job] | None:
        """Add the jobs; their handles, or None when the plain handles are right."""
        raise NotImplementedError

    async def apush(
        self,
        client: redis.asyncio.Redis,
        envelopes: Sequence[Envelope],
        payloads: Sequence[bytes],
        opts: JobOptions,
        at: float | None,
    ) -> list[Job] | None:
        raise NotImplementedError

    def registering(self, fn: Callable[..., Any], keywords: dict[str, Any]) -> Callable[..., Any]:
        """Before `@job` makes the job function: may wrap the function (given only
        when one of `keywords` was passed)."""
        return fn

    def registered(self, function: JobFunction[Any, Any], keywords: dict[str, Any]) -> None:
        """After `@job` made the job function (given only when one of `keywords` was)."""
        return None


_FEATURES: list[Feature] = []
# option name -> (feature, default)
_OPTIONS: dict[str, tuple[Feature, Any]] = {}
# @job keyword -> feature
_KEYWORDS: dict[str, Feature] = {}


def register(feature: Feature) -> Feature:
    """Declare a feature's options and keywords (once per name; again replaces it)."""
    for i, existing in enumerate(_FEATURES):
        if existing.name == feature.name:
            _FEATURES[i] = feature
            break
    else:
        _FEATURES.append(feature)
    for option, default in feature.options.items():
        owner = _OPTIONS.get(option)
        if owner is not None and owner[0].name != feature.name:
            raise ValueError(f"job option {option!r} is already declared by {owner[0].name}")
        _OPTIONS[option] = (feature, default)
    for keyword in feature.keywords:
        _KEYWORDS[keyword] = feature
    return feature


def registered() -> tuple[Feature, ...]:
    return tuple(_FEATURES)


def default(option: str) -> Any:
    return _OPTIONS[option][1]


def unknown_option(option: str, core: Sequence[str]) -> TypeError:
    known = (*core, *_OPTIONS)
    match = difflib.get_close_matches(option, known, n=1)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return TypeError(f"unknown job option {option!r}{hint}")


def resolve(given: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Feature, ...]]:
    """The features' options one job was given, checked: (every option of each feature
    concerned, with defaults filled in; the features that act on the job, in
    registration order). A name no feature declares is a TypeError."""
    if not given:
        return {}, ()
    touched: list[Feature] = []
    for option in given:
        owner = _OPTIONS.get(option)
        if owner is None:
            raise KeyError(option)
        if owner[0] not in touched:
            touched.append(owner[0])
    values: dict[str, Any] = {}
    active: list[Feature] = []
    for feature in _FEATURES:
        if feature not in touched:
            continue
        mine = {option: given.get(option, dflt) for option, dflt in feature.options.items()}
        if feature.check(mine):
            active.append(feature)
        values.update(mine)
    return values, tuple(active)


def split_keywords(options: dict[str, Any]) -> dict[Feature, dict[str, Any]]:
    """Take the registration keywords out of `@job`'s keywords, by feature."""
    out: dict[Feature, dict[str, Any]] = {}
    for keyword in [k for k in options if k in _KEYWORDS]:
        out.setdefault(_KEYWORDS[keyword], {})[keyword] = options.pop(keyword)
    return out


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class JobOptions:
    """How a job is run. Set on `@job(...)`, overridable per call with `.options(...)`.

    The fields are the core's options; the options that features declare (`unique`,
    `limits`, `priority`, `expires_in`, ... see steep.options) are accepted as keywords
    too, checked by their feature, and read with `get(name)`.
    """

    queue: str = "default"
    retries: int = 5
    timeout: float | None = None
    result_ttl: int | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 5.0  # seconds before the first retry; doubles each attempt, plus jitter
    max_backoff: float = 3600.0
    tags: tuple[str, ...] = ()  # labels to find the job by (ops filters, dashboard)
    # the features' options this job was given, checked (with the defaults of the rest
    # of each feature's options), and the features that act on the job
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    active: tuple[Feature, ...] = ()
    # the active feature that adds the job with its own script (unique, priority), if any
    pusher: Feature | None = dataclasses.field(default=None, compare=False)
    # the retry timing options given per call (`.options(backoff=...)`): the envelope
    # carries them, as the worker otherwise reads the decorator's
    per_call: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)

    def __init__(self, **options: Any) -> None:
        core = {name: options.pop(name) for name in _CORE_FIELDS if name in options}
        for name, default in _CORE_DEFAULTS.items():
            object.__setattr__(self, name, core.get(name, default))
        try:
            features, active = resolve(options)
        except KeyError as exc:
            raise unknown_option(exc.args[0], _CORE_FIELDS) from None
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "active", active)
        pushers = [f for f in active if f.push_rank > 0]
        pusher = max(pushers, key=lambda f: f.push_rank) if pushers else None
        object.__setattr__(self, "pusher", pusher)
        object.__setattr__(self, "per_call", frozenset())
        self._check()

    def _check(self) -> None:
        if isinstance(self.tags, str):
            object.__setattr__(self, "tags", (self.tags,))
        elif not isinstance(self.tags, tuple):
            object.__setattr__(self, "tags", tuple(self.tags))
        if not all(isinstance(tag, str) and tag for tag in self.tags):
            raise ValueError(f"tags must be non-empty strings, got {self.tags!r}")
        if not self.queue or any(c in self.queue for c in "{}: \t\n"):
            raise ValueError(f"invalid queue name {self.queue!r}: no braces, colons or spaces")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.result_ttl is not None and self.result_ttl <= 0:
            raise ValueError(f"result_ttl must be > 0 seconds, got {self.result_ttl}")
        if not 0 < self.backoff <= self.max_backoff:
            raise ValueError(
                f"need 0 < backoff <= max_backoff, got backoff={self.backoff!r}, "
                f"max_backoff={self.max_backoff!r}"
            )

    def get(self, option: str) -> Any:
        """A feature's option for this job (its default when the job was not given it)."""
        try:
            return self.features[option]
        except KeyError:
            return default(option)

    def replace(self, **changes: Any) -> JobOptions:
        """These options with some changed (the features' options checked again)."""
        current = {name: getattr(self, name) for name in _CORE_FIELDS}
        new = JobOptions(**{**current, **self.features, **changes})
        carried = self.per_call | (PER_CALL_RETRY & changes.keys())
        object.__setattr__(new, "per_call", carried)
        return new

    def per_call_options(self, **changes: Any) -> JobOptions:
        """`.options(...)`: `replace`, refusing what the worker cannot be told per call."""
        if "retry_on" in changes:
            raise TypeError(
                "retry_on cannot be set per call: the worker matches exceptions against the "
                "classes given to @job(retry_on=...); set it there"
            )
        return self.replace(**changes)


_CORE_DEFAULTS: dict[str, Any] = {
    "queue": "default",
    "retries": 5,
    "timeout": None,
    "result_ttl": None,
    "retry_on": (Exception,),
    "backoff": 5.0,
    "max_backoff": 3600.0,
    "tags": (),
}
_CORE_FIELDS = tuple(_CORE_DEFAULTS)
# the retry timing options an envelope carries when they are given per call
PER_CALL_RETRY = frozenset({"backoff", "max_backoff"})
