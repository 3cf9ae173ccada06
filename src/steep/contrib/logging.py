"""LogContext: the enqueuing code's logging context follows its job into the worker.

A log line written by a job should say which request asked for it. `bind(...)`
holds structured fields (a request id, a tenant) for a block of code; the
`LogContext` middleware copies them, the context variables it is told to carry
and structlog's bound context, into the job's meta at enqueue, and restores them
around the run together with `job_id`, `job_name`, `job_queue` and `job_attempt`.
`ContextFilter` puts the fields on stdlib log records. See docs/middleware.md.

    from steep.contrib.logging import LogContext, bind
    steep.middleware.add(LogContext(carry=[request_id_var]))
    with bind(request_id="r-42"):
        send_report.enqueue(7)   # the job's log records carry request_id="r-42"
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import logging
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from steep.middleware import Middleware

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.job import Envelope

__all__ = ["META_KEY", "ContextFilter", "LogContext", "bind", "current", "install_filter"]

META_KEY = "log"  # job.meta[META_KEY]: the carried fields, a JSON object

_EMPTY: Mapping[str, Any] = types.MappingProxyType({})
_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "steep_log_context", default=_EMPTY
)
_MISSING = object()


def current() -> dict[str, Any]:
    """The logging context's fields in this thread or task."""
    return dict(_fields.get())


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to the logging context for the block (nested blocks add to the outer ones)."""
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


class ContextFilter(logging.Filter):
    """Puts the logging context's fields on every record a handler sees.

    An attribute the record already has (one passed with `extra=`) is kept: a
    record factory could not do that, and would make such a call raise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


def install_filter(*loggers: logging.Logger) -> None:
    """Add a `ContextFilter` to each handler of `loggers` (default: the root and steep's)."""
    for logger in loggers or (logging.getLogger(), logging.getLogger("steep")):
        for handler in logger.handlers:
            if not any(isinstance(f, ContextFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())


def _plain(value: Any) -> Any:
    # meta is JSON: anything else travels as its text, so a field never refuses an enqueue
    return value if isinstance(value, str | int | float | bool | None) else str(value)


def _resolve(var: contextvars.ContextVar[Any] | str) -> contextvars.ContextVar[Any]:
    if isinstance(var, contextvars.ContextVar):
        return var
    module, _, attr = var.partition(":")
    found = getattr(importlib.import_module(module), attr, None)
    if not isinstance(found, contextvars.ContextVar):
        raise TypeError(f"LogContext: {var!r} does not name a contextvars.ContextVar")
    return found


class LogContext(Middleware):
    """Carries logging context from enqueue into the job's run.

    `carry`: context variables (or "module:attr" paths to them) whose values are
    sent along under their `name` and set again in the job. `structlog`: also
    carry and bind structlog's contextvars (default: when structlog is installed).
    `install_filter`: add `ContextFilter` to the root and steep loggers' handlers
    when the first job runs; pass False to place the filter yourself (dictConfig).
    """

    def __init__(
        self,
        carry: Iterable[contextvars.ContextVar[Any] | str] = (),
        *,
        structlog: bool | None = None,
        install_filter: bool = True,
    ) -> None:
        self._carry_spec = tuple(carry)
        self._carry: tuple[contextvars.ContextVar[Any], ...] | None = None
        if structlog is None:
            structlog = importlib.util.find_spec("structlog") is not None
        self._structlog: Any = (
            importlib.import_module("structlog.contextvars") if structlog else None
        )
        self._install_filter = install_filter

    def _vars(self) -> tuple[contextvars.ContextVar[Any], ...]:
        # resolved on first use: a settings-loaded middleware must not import the app early
        if self._carry is None:
            self._carry = tuple(_resolve(var) for var in self._carry_spec)
        return self._carry

    @contextlib.contextmanager
    def enqueue(self, job: Envelope) -> Iterator[None]:
        fields: dict[str, Any] = {}
        if self._structlog is not None:
            fields.update(self._structlog.get_contextvars())
        fields.update(_fields.get())
        for var in self._vars():
            value = var.get(_MISSING)
            if value is not _MISSING:
                fields[var.name] = value
        if fields:
            job.meta[META_KEY] = {key: _plain(value) for key, value in fields.items()}
        yield

    @contextlib.contextmanager
    def execute(self, job: JobContext) -> Iterator[None]:
        if self._install_filter:
            install_filter()
            self._install_filter = False
        carried = job.meta.get(META_KEY)
        fields = dict(carried) if isinstance(carried, dict) else {}
        fields.update(
            job_id=job.id, job_name=job.name, job_queue=job.queue, job_attempt=job.attempt
        )
        with contextlib.ExitStack() as stack:
            # pool threads are reused: every variable set here is reset when the job ends
            for var in self._vars():
                if var.name in fields:
                    stack.callback(var.reset, var.set(fields[var.name]))
            stack.callback(_fields.reset, _fields.set(fields))
            if self._structlog is not None:
                stack.enter_context(self._structlog.bound_contextvars(**fields))
            yield
