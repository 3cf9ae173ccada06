"""Middleware: code that wraps every enqueue (client side) and every run (worker side).

A middleware is an object with either or both of two methods, each returning a
context manager:

- `enqueue(job)` wraps the push of one job; `job` is its `Envelope` before it is
  encoded, so the middleware may add to `job.meta` (trace headers, the request id)
  or raise to refuse the enqueue.
- `execute(job)` wraps one run of a job; `job` is its `JobContext` (with the
  `meta` the enqueue side stored). It is entered in the thread that runs a plain
  function, or in the task that runs an async one, so context variables it sets
  (logging context, tracing span, error-reporting scope) are seen by the job's code,
  and the job's exception passes through it.

Register with `steep.middleware.add(...)`, or name them in settings
(`middleware = ["app.tracing:Tracing"]`: a class, made with no arguments, or an
instance). See docs/middleware.md.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from steep import settings as _settings

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.job import Envelope

__all__ = ["Middleware", "add", "clear", "installed"]


class Middleware:
    """Base class: override `enqueue`, `execute`, or both (each a context manager)."""

    def enqueue(self, job: Envelope) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def execute(self, job: JobContext) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()


_lock = threading.Lock()
_added: list[Any] = []
_loaded: dict[tuple[str, ...], list[Any]] = {}
# (settings the chains were built for, (enqueue chain, execute chain))
_chains: tuple[Any, tuple[tuple[Any, ...], tuple[Any, ...]]] | None = None


def add(*middleware: Any) -> None:
    """Install middleware for this process, after those named in settings."""
    global _chains
    for mw in middleware:
        if not (callable(getattr(mw, "enqueue", None)) or callable(getattr(mw, "execute", None))):
            raise TypeError(f"{mw!r} has neither an enqueue() nor an execute() method")
    with _lock:
        _added.extend(middleware)
        _chains = None


def clear() -> None:
    """Remove the middleware added with `add()` (tests use this)."""
    global _chains
    with _lock:
        _added.clear()
        _chains = None


def installed() -> list[Any]:
    """Every middleware in effect, outermost first: settings' list, then `add()`'s."""
    from steep.settings import get_settings

    return [*_from_settings(get_settings().middleware), *_added]


def _from_settings(paths: tuple[str, ...]) -> list[Any]:
    found = _loaded.get(paths)
    if found is None:
        found = _loaded[paths] = [_load(path) for path in paths]
    return found


def _load(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"cannot load middleware {path!r} named in settings: {exc}") from exc
    return target() if isinstance(target, type) else target


def _overrides(mw: Any, method: str) -> bool:
    impl = getattr(type(mw), method, None)
    return impl is not None and impl is not getattr(Middleware, method)


def chains() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(middleware with an enqueue hook, middleware with an execute hook)."""
    global _chains
    cached = _chains
    # on every enqueue and run: the current settings object read without a lock (a
    # stale read only rebuilds the chains)
    if cached is not None and cached[0] is _settings._current:
        return cached[1]
    settings = _settings.get_settings()
    every = installed()
    found = (
        tuple(mw for mw in every if _overrides(mw, "enqueue")),
        tuple(mw for mw in every if _overrides(mw, "execute")),
    )
    _chains = (settings, found)
    return found


@contextlib.contextmanager
def around_enqueue(chain: tuple[Any, ...], jobs: list[Envelope]) -> Iterator[None]:
    """Enter every middleware's enqueue hook for each job, outermost first."""
    with contextlib.ExitStack() as stack:
        for job in jobs:
            for mw in chain:
                stack.enter_context(mw.enqueue(job))
        yield


@contextlib.contextmanager
def around_execute(chain: tuple[Any, ...], job: JobContext) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for mw in chain:
            stack.enter_context(mw.execute(job))
        yield
