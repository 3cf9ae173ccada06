"""SentryMiddleware: a job's exception reaches Sentry with the job's tags, in the request's trace.

Each run gets an isolated scope (tags `steep.job`, `steep.queue`,
`steep.attempt` and a `steep job` context), so what one job adds to its scope
never leaks into the next job on the same thread. The run is a Sentry
transaction (op `queue.process`) that continues the trace the enqueuing code
was in: enqueue stores `sentry-trace` and `baggage` under `job.meta["sentry"]`
and, inside a transaction, records a `queue.publish` span. A failed run's
exception is captured as unhandled, then re-raised, so steep's retries and dead
set work as before. An operator's cancel is not an error and is not reported.

    sentry_sdk.init(dsn=..., traces_sample_rate=0.1)
    steep.middleware.add(SentryMiddleware())
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from steep.contrib._optional import require
from steep.errors import Cancelled
from steep.middleware import Middleware

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.job import Envelope

sentry_sdk = require("sentry_sdk", extra="sentry", feature="steep.contrib.sentry")
sentry_utils = require("sentry_sdk.utils", extra="sentry", feature="steep.contrib.sentry")

__all__ = ["META_KEY", "SentryMiddleware"]

META_KEY = "sentry"  # job.meta[META_KEY]: {"sentry-trace": ..., "baggage": ...}
_NOT_ERRORS = (Cancelled, asyncio.CancelledError)


class SentryMiddleware(Middleware):
    """Reports failed runs to Sentry and continues the enqueuing request's trace."""

    @contextlib.contextmanager
    def enqueue(self, job: Envelope) -> Iterator[None]:
        if not sentry_sdk.get_client().is_active():
            yield
            return
        parent = sentry_sdk.get_current_span()
        if parent is None:
            # no transaction: still carry the trace id, so the job's errors join the request's
            headers = {
                "sentry-trace": sentry_sdk.get_traceparent(),
                "baggage": sentry_sdk.get_baggage(),
            }
            job.meta[META_KEY] = {key: value for key, value in headers.items() if value}
            yield
            return
        # start_child does not make the span current: a batch's spans stay siblings
        with parent.start_child(op="queue.publish", name=job.name) as span:
            span.set_data("messaging.message.id", job.id)
            span.set_data("messaging.destination.name", job.queue)
            headers = {"sentry-trace": span.to_traceparent()}
            if (baggage := span.to_baggage()) is not None:
                headers["baggage"] = baggage.serialize()
            job.meta[META_KEY] = headers
            yield

    @contextlib.contextmanager
    def execute(self, job: JobContext) -> Iterator[None]:
        carried = job.meta.get(META_KEY)
        headers = carried if isinstance(carried, dict) else {}
        with sentry_sdk.isolation_scope() as scope:
            scope.set_tag("steep.job", job.name)
            scope.set_tag("steep.queue", job.queue)
            scope.set_tag("steep.attempt", str(job.attempt))
            scope.set_context(
                "steep job",
                {
                    "id": job.id,
                    "name": job.name,
                    "queue": job.queue,
                    "attempt": job.attempt,
                    "worker": job.worker_id,
                },
            )
            transaction = sentry_sdk.continue_trace(
                headers, op="queue.process", name=job.name, source="task", origin="auto.queue.steep"
            )
            transaction.set_data("messaging.message.id", job.id)
            transaction.set_data("messaging.destination.name", job.queue)
            transaction.set_data("messaging.message.retry.count", job.attempt - 1)
            cancelled: BaseException | None = None
            with sentry_sdk.start_transaction(transaction):
                try:
                    yield
                except _NOT_ERRORS as exc:
                    # left outside the transaction, which would mark any exception an error
                    transaction.set_status("cancelled")
                    cancelled = exc
                except BaseException as exc:
                    transaction.set_status("internal_error")
                    self._capture(exc)
                    raise
                else:
                    transaction.set_status("ok")
            if cancelled is not None:
                raise cancelled

    @staticmethod
    def _capture(exc: BaseException) -> None:
        client = sentry_sdk.get_client()
        event, hint = sentry_utils.event_from_exception(
            exc,
            client_options=client.options,
            mechanism={"type": "steep", "handled": False},
        )
        sentry_sdk.capture_event(event, hint=hint)
