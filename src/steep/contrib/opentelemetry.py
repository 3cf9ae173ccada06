"""Tracing: OpenTelemetry spans that join a job's run to the request that enqueued it.

Enqueue opens a PRODUCER span (`send <queue>`) and injects its context into
`job.meta` with the configured propagator (W3C `traceparent`, `tracestate`, and
`baggage` by default: standard header names, readable by a consumer in any
language). The run opens a CONSUMER span (`process <queue>`) whose parent is
that context and which also links to it, so the job appears inside the
request's trace. Attributes follow OpenTelemetry's messaging conventions; a
failed run records the exception and sets the span's status to ERROR.

    from steep.contrib.opentelemetry import Tracing
    steep.middleware.add(Tracing())  # or middleware = ["steep.contrib.opentelemetry:Tracing"]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from steep.contrib._optional import require
from steep.middleware import Middleware

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.job import Envelope

_FEATURE = "steep.contrib.opentelemetry"
trace = require("opentelemetry.trace", extra="opentelemetry", feature=_FEATURE)
propagate = require("opentelemetry.propagate", extra="opentelemetry", feature=_FEATURE)

__all__ = ["Tracing"]

SYSTEM = "steep"  # messaging.system: not one of the listed brokers, so its own name


class Tracing(Middleware):
    """Producer span around enqueue, consumer span around each run.

    `tracer_provider`: where spans go (default: the global provider, looked up
    at each span, so one set after this middleware was made is used).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        from steep import __version__

        self._provider = tracer_provider
        self._version = __version__

    def _tracer(self) -> Any:
        return trace.get_tracer("steep", self._version, tracer_provider=self._provider)

    @contextlib.contextmanager
    def enqueue(self, job: Envelope) -> Iterator[None]:
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": job.queue,
            "messaging.message.id": job.id,
            "steep.job.name": job.name,
        }
        # Not made current: the spans of a batch (enqueue_many) are siblings, not nested.
        with self._span(f"send {job.queue}", trace.SpanKind.PRODUCER, attributes) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            job.meta.update(carrier)
            yield

    @contextlib.contextmanager
    def execute(self, job: JobContext) -> Iterator[None]:
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.queue,
            "messaging.message.id": job.id,
            "steep.job.name": job.name,
            "steep.job.attempt": job.attempt,
        }
        parent = propagate.extract(job.meta) if job.meta else None
        kind = trace.SpanKind.CONSUMER
        with self._span(f"process {job.queue}", kind, attributes, parent, current=True):
            yield

    @contextlib.contextmanager
    def _span(
        self,
        name: str,
        kind: Any,
        attributes: dict[str, Any],
        parent: Any = None,
        *,
        current: bool = False,
    ) -> Iterator[Any]:
        links = []
        if parent is not None:
            producer = trace.get_current_span(parent).get_span_context()
            if producer.is_valid:
                links.append(trace.Link(producer))
        # Exceptions are recorded here, not by the SDK: a job's timeout or cancellation
        # arrives as a BaseException, which must mark the span failed too.
        span = self._tracer().start_span(
            name, context=parent, kind=kind, attributes=attributes, links=links
        )
        with (
            trace.use_span(
                span, end_on_exit=True, record_exception=False, set_status_on_exception=False
            )
            if current
            else _ending(span)
        ):
            try:
                yield span
            except BaseException as exc:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(
                    trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                )
                raise


@contextlib.contextmanager
def _ending(span: Any) -> Iterator[None]:
    try:
        yield
    finally:
        span.end()
