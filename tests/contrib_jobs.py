"""Job functions for the contrib middleware tests (importable by worker subprocesses)."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from steep import job

log = logging.getLogger("tests.contrib_jobs")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@job(result_ttl=60)
def log_line(message: str) -> dict[str, Any]:
    """Logs `message` and returns what the job saw of the carried context."""
    log.info(message)
    seen: dict[str, Any] = {"request_id": request_id.get()}
    try:
        import structlog
    except ImportError:
        return seen
    seen["structlog"] = structlog.contextvars.get_contextvars()
    return seen


@job(result_ttl=60)
async def async_log_line(message: str) -> dict[str, Any]:
    log.info(message)
    return {"request_id": request_id.get()}


@job(result_ttl=60)
def current_trace_id() -> str:
    """The trace id of the span the job's own code runs in (OpenTelemetry)."""
    from opentelemetry import trace

    return format(trace.get_current_span().get_span_context().trace_id, "032x")


@job(retries=0)
def fail_with(message: str) -> None:
    raise ValueError(message)
