"""The `@job` decorator, job options, and lookup of job functions by name."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from steep import client
from steep import options as steep_options
from steep.client import Call
from steep.errors import UnknownJob
from steep.job import Job
from steep.options import JobOptions
from steep.signature import Signature, signature

P = ParamSpec("P")
R = TypeVar("R")

# Argument types that need no conversion back from their JSON form.
_JSON_NATIVE: frozenset[Any] = frozenset({int, str, float, bool, type(None), Any, list, dict})


class JobFunction(Generic[P, R]):
    """A function registered as a job: call it to run inline, or enqueue it."""

    def __init__(self, fn: Callable[P, R], name: str, options: JobOptions) -> None:
        self.fn = fn
        self.name = name
        self.default_options = options
        self.is_async = inspect.iscoroutinefunction(fn)
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
        return BoundJob(self, self.default_options.per_call_options(**overrides))

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

    def enqueue_many(self, calls: Iterable[Call]) -> list[Job]:
        return BoundJob(self, self.default_options).enqueue_many(calls)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await BoundJob(self, self.default_options).aenqueue(*args, **kwargs)

    async def aenqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await BoundJob(self, self.default_options).aenqueue_in(delay, *args, **kwargs)

    async def aenqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await BoundJob(self, self.default_options).aenqueue_at(when, *args, **kwargs)

    async def aenqueue_many(self, calls: Iterable[Call]) -> list[Job]:
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
        return client.enqueue(self.function.name, self.opts, args, kwargs)

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        return signature(self.function.name, self.opts, args, kwargs, immutable=False)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        return signature(self.function.name, self.opts, args, kwargs, immutable=True)

    def enqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        return client.enqueue(self.function.name, self.opts, args, kwargs, at=client.due(delay))

    def enqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        return client.enqueue(self.function.name, self.opts, args, kwargs, at=client.due(when))

    def enqueue_many(self, calls: Iterable[Call]) -> list[Job]:
        return client.enqueue_many(self.function.name, self.opts, calls)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await client.aenqueue(self.function.name, self.opts, args, kwargs)

    async def aenqueue_in(self, delay: float | timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        at = client.due(delay)
        return await client.aenqueue(self.function.name, self.opts, args, kwargs, at=at)

    async def aenqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        at = client.due(when)
        return await client.aenqueue(self.function.name, self.opts, args, kwargs, at=at)

    async def aenqueue_many(self, calls: Iterable[Call]) -> list[Job]:
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


def job(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
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
    # keywords that act once, at registration (cron, iterable), by feature
    at_registration = steep_options.split_keywords(options)
    if "retry_on" in options and isinstance(options["retry_on"], type):
        options["retry_on"] = (options["retry_on"],)
    opts = JobOptions(**options)

    def register(func: Callable[..., Any]) -> JobFunction[Any, Any]:
        if isinstance(func, JobFunction):
            raise TypeError(f"{func.name} is already a job")
        job_name = name or _default_name(func)
        for feature, keywords in at_registration.items():
            func = feature.registering(func, keywords)
        jf: JobFunction[Any, Any] = JobFunction(func, job_name, opts)
        for feature, keywords in at_registration.items():
            feature.registered(jf, keywords)
        _REGISTRY[job_name] = jf
        return jf

    return register(fn) if fn is not None else register


def names() -> list[str]:
    """Every registered job name, sorted."""
    return sorted(_REGISTRY)


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
