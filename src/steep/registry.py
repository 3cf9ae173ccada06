"""The `@job` decorator, job options, and lookup of job functions by name."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from steep.errors import UnknownJob
from steep.job import Job

if TYPE_CHECKING:
    from steep.features.batches.workflow import Signature

P = ParamSpec("P")
R = TypeVar("R")

# Argument types that need no conversion back from their JSON form.
_JSON_NATIVE: frozenset[Any] = frozenset({int, str, float, bool, type(None), Any, list, dict})


@dataclasses.dataclass(frozen=True, slots=True)
class JobOptions:
    """How a job is run. Set on `@job(...)`, overridable per call with `.options(...)`."""

    queue: str = "default"
    retries: int = 5
    timeout: float | None = None
    result_ttl: int | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 5.0  # seconds before the first retry; doubles each attempt, plus jitter
    max_backoff: float = 3600.0
    tags: tuple[str, ...] = ()  # labels to find the job by (ops filters, dashboard)
    # steep.features.limits limiters that must all admit the job before it runs (None: no say)
    limits: tuple[Any, ...] | None = None
    # uniqueness (steep.features.unique, docs/unique.md): at most one such job at a time
    unique: bool = False
    unique_for: float | None = None  # seconds the lock lasts at most; implies unique
    unique_key: Callable[..., str] | None = None  # called with the job's arguments
    unique_until: str = "finished"  # or "started"
    expires_in: float | None = None  # seconds: discarded if not started by then
    priority: int = 0  # higher runs first within the queue (steep.features.priority)

    def __post_init__(self) -> None:
        if self.limits is not None:
            _check_limits(self)
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
        if self.unique_for is not None or self.unique_key is not None:
            object.__setattr__(self, "unique", True)
        if self.unique:
            from steep.features.unique import check_options

            check_options(self)
        if self.expires_in is not None and self.expires_in <= 0:
            raise ValueError(f"expires_in must be > 0 seconds, got {self.expires_in}")
        if self.priority:
            from steep.features.priority import check_priority

            check_priority(self.priority)


def _check_limits(opts: JobOptions) -> None:
    from steep.features.limits import Limiter

    limits = opts.limits
    if isinstance(limits, Limiter):
        limits = (limits,)
    limits = tuple(limits or ())
    bad = [lim for lim in limits if not isinstance(lim, Limiter)]
    if bad:
        raise ValueError(
            f"limits must be limiters of steep.features.limits (Concurrency, Window), got {bad!r}"
        )
    object.__setattr__(opts, "limits", limits)


class JobFunction(Generic[P, R]):
    """A function registered as a job: call it to run inline, or enqueue it."""

    def __init__(self, fn: Callable[P, R], name: str, options: JobOptions) -> None:
        self.fn = fn
        self.name = name
        self.default_options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.iterable = False  # a generator walked in steps (steep.features.iterable)
        self.signature = inspect.signature(fn)
        self._converters: dict[str, Any] | None = None
        self._return_type: Any = ...
        self._positional_arity = _positional_arity(self.signature)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<job {self.name}>"

    # -- enqueueing: all paths go through steep.client --------------------------------

    def options(self, **overrides: Any) -> BoundJob[P, R]:
        """The same job with some options changed for the calls made through it."""
        return BoundJob(self, dataclasses.replace(self.default_options, **overrides))

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return BoundJob(self, self.default_options).enqueue(*args, **kwargs)

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """This call written down, for batches, chains and groups (steep.features.batches)."""
        return BoundJob(self, self.default_options).s(*args, **kwargs)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """An immutable signature: in a chain it does not get the previous result."""
        return BoundJob(self, self.default_options).si(*args, **kwargs)

    def enqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        return BoundJob(self, self.default_options).enqueue_in(delay, *args, **kwargs)

    def enqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        return BoundJob(self, self.default_options).enqueue_at(when, *args, **kwargs)

    def enqueue_many(
        self, calls: Iterable[Sequence[Any] | tuple[Sequence[Any], dict]]
    ) -> list[Job]:
        return BoundJob(self, self.default_options).enqueue_many(calls)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await BoundJob(self, self.default_options).aenqueue(*args, **kwargs)

    async def aenqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await BoundJob(self, self.default_options).aenqueue_in(delay, *args, **kwargs)

    async def aenqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await BoundJob(self, self.default_options).aenqueue_at(when, *args, **kwargs)

    async def aenqueue_many(
        self, calls: Iterable[Sequence[Any] | tuple[Sequence[Any], dict]]
    ) -> list[Job]:
        return await BoundJob(self, self.default_options).aenqueue_many(calls)

    # -- the worker side ---------------------------------------------------------------

    @property
    def return_type(self) -> Any:
        if self._return_type is ...:
            hints = _hints(self.fn)
            rtype = hints.get("return")
            self._return_type = None if rtype in _JSON_NATIVE or rtype is None else rtype
        return self._return_type

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check decoded arguments against the signature and restore typed values.

        Raises TypeError (the arguments no longer fit the function) or
        msgspec.ValidationError (a value cannot become its annotated type).
        """
        import msgspec

        converters = self._argument_types()
        if not kwargs and not converters and self._positional_arity is not None:
            low, high = self._positional_arity
            if low <= len(args) <= high:
                return args, kwargs  # plain positional call: nothing to check or convert
        bound = self.signature.bind(*args, **kwargs)
        if converters:
            for name, value in bound.arguments.items():
                target = converters.get(name)
                if target is not None:
                    bound.arguments[name] = msgspec.convert(value, target, strict=False)
        return list(bound.args), dict(bound.kwargs)

    def _argument_types(self) -> dict[str, Any]:
        if self._converters is None:
            hints = _hints(self.fn)
            self._converters = {}
            for pname, param in self.signature.parameters.items():
                hint = hints.get(pname)
                if hint is None or hint in _JSON_NATIVE:
                    continue
                if param.kind is param.VAR_POSITIONAL:
                    hint = tuple[hint, ...]  # type: ignore[valid-type]
                elif param.kind is param.VAR_KEYWORD:
                    hint = dict[str, hint]  # type: ignore[valid-type]
                self._converters[pname] = hint
        return self._converters


def _positional_arity(signature: inspect.Signature) -> tuple[int, int] | None:
    """(required, total) when every parameter can be passed by position, else None."""
    params = list(signature.parameters.values())
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        return None
    required = sum(1 for p in params if p.default is p.empty)
    return required, len(params)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: run without conversions
        return {}


class BoundJob(Generic[P, R]):
    """A job function together with the options for the calls made through it."""

    __slots__ = ("function", "opts")

    def __init__(self, function: JobFunction[P, R], opts: JobOptions) -> None:
        self.function = function
        self.opts = opts

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        from steep import client

        return client.enqueue(self.function.name, self.opts, args, kwargs)

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        from steep.features.batches.workflow import signature

        return signature(self.function.name, self.opts, args, kwargs, immutable=False)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        from steep.features.batches.workflow import signature

        return signature(self.function.name, self.opts, args, kwargs, immutable=True)

    def enqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        from steep import client

        return client.enqueue(self.function.name, self.opts, args, kwargs, at=client.due(delay))

    def enqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        from steep import client

        return client.enqueue(self.function.name, self.opts, args, kwargs, at=client.due(when))

    def enqueue_many(
        self, calls: Iterable[Sequence[Any] | tuple[Sequence[Any], dict]]
    ) -> list[Job]:
        from steep import client

        return client.enqueue_many(self.function.name, self.opts, calls)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        from steep import client

        return await client.aenqueue(self.function.name, self.opts, args, kwargs)

    async def aenqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        from steep import client

        at = client.due(delay)
        return await client.aenqueue(self.function.name, self.opts, args, kwargs, at=at)

    async def aenqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        from steep import client

        at = client.due(when)
        return await client.aenqueue(self.function.name, self.opts, args, kwargs, at=at)

    async def aenqueue_many(
        self, calls: Iterable[Sequence[Any] | tuple[Sequence[Any], dict]]
    ) -> list[Job]:
        from steep import client

        return await client.aenqueue_many(self.function.name, self.opts, calls)


_REGISTRY: dict[str, JobFunction[Any, Any]] = {}


def _default_name(fn: Callable[..., Any]) -> str:
    module = fn.__module__
    if module == "__main__":
        # `python -m app.jobs` runs app.jobs as __main__: name jobs after the
        # real module so a worker can import them.
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
    return f"{module}.{fn.__qualname__}"


@overload
def job(fn: Callable[P, Awaitable[R]], /) -> JobFunction[P, Awaitable[R]]: ...
@overload
def job(fn: Callable[P, R], /) -> JobFunction[P, R]: ...
@overload
def job(
    *,
    queue: str = ...,
    retries: int = ...,
    timeout: float | None = ...,
    result_ttl: int | None = ...,
    retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
    backoff: float = ...,
    max_backoff: float = ...,
    tags: Sequence[str] = ...,
    limits: Sequence[Any] = ...,
    unique: bool = ...,
    unique_for: float | None = ...,
    unique_key: Callable[..., str] | None = ...,
    unique_until: str = ...,
    expires_in: float | None = ...,
    priority: int = ...,
    name: str | None = ...,
    cron: str = ...,
    timezone: str = ...,
    missed: str = ...,
    grace: float = ...,
    cron_args: Sequence[Any] = ...,
    cron_kwargs: dict[str, Any] = ...,
    iterable: bool = ...,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...


# `@job` keywords that make it a periodic job (steep.features.cron), not options of each call.
_CRON_KEYWORDS = ("cron", "timezone", "missed", "grace", "cron_args", "cron_kwargs")


def job(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    iterable: bool = False,
    **options: Any,
) -> Any:
    """Register a function (sync or async) as a job.

    `@job` or `@job(queue="mail", retries=5, timeout=30, result_ttl=3600,
    retry_on=(IOError,), backoff=5.0, tags=("billing",), limits=[api],
    name="stable.name")`.
    `cron="0 3 * * *"` (with `timezone`, `missed`, `grace`, `cron_args`, `cron_kwargs`)
    also enqueues it on that schedule (docs/cron.md).
    `iterable=True`: a generator walked in steps that resumes from a saved cursor
    (see steep.features.iterable).
    """
    periodic = {key: options.pop(key) for key in _CRON_KEYWORDS if key in options}
    if periodic and "cron" not in periodic:
        raise TypeError(f"@job: {', '.join(periodic)} only go with cron=...")
    if "retry_on" in options and isinstance(options["retry_on"], type):
        options["retry_on"] = (options["retry_on"],)
    opts = JobOptions(**options)

    def register(func: Callable[..., Any]) -> JobFunction[Any, Any]:
        if isinstance(func, JobFunction):
            raise TypeError(f"{func.name} is already a job")
        job_name = name or _default_name(func)
        if iterable:
            from steep.features.iterable import make_driver

            func = make_driver(func)
        jf: JobFunction[Any, Any] = JobFunction(func, job_name, opts)
        jf.iterable = iterable
        if periodic:
            from steep.features import cron

            cron.register(jf, **periodic)
        _REGISTRY[job_name] = jf
        return jf

    return register(fn) if fn is not None else register


def lookup_local(name: str) -> JobFunction[Any, Any] | None:
    return _REGISTRY.get(name)


def lookup(name: str) -> JobFunction[Any, Any]:
    """The job function registered under `name`.

    A worker runs only jobs registered by the modules it was told to import:
    a job name read from Redis never causes an import.
    """
    found = _REGISTRY.get(name)
    if found is None:
        raise UnknownJob(f"no job named {name!r} is registered in this worker")
    return found


def import_job(name: str) -> JobFunction[Any, Any]:
    """Import the module a dotted job name points into, then look the job up (CLI use)."""
    found = _REGISTRY.get(name)
    if found is not None:
        return found
    module = name.rpartition(".")[0]
    while module:
        try:
            importlib.import_module(module)
            break
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            module = module.rpartition(".")[0]
    found = _REGISTRY.get(name)
    if found is None:
        raise UnknownJob(f"no job named {name!r}: import its module and decorate it with @job")
    return found
