"""Tracing: a producer span at enqueue and a consumer span at run, in the request's trace.

Spans go to the OpenTelemetry SDK's own InMemorySpanExporter (the SDK's test exporter).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from steep import middleware
from steep.connection import get_keys
from steep.contrib.opentelemetry import Tracing
from steep.job import decode_envelope
from tests import contrib_jobs


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    middleware.add(Tracing(tracer_provider=provider))
    yield provider, exporter
    middleware.clear()
    provider.shutdown()


def test_producer_and_consumer_spans_share_the_requests_trace(client, run_worker, spans):
    provider, exporter = spans
    with provider.get_tracer("web").start_as_current_span("GET /report") as request:
        handle = contrib_jobs.current_trace_id.enqueue()
    trace_id = format(request.get_span_context().trace_id, "032x")
    stored = decode_envelope(client.hget(get_keys().queue("default").jobs, handle.id))
    assert stored.meta["traceparent"].split("-")[1] == trace_id  # W3C header in meta

    run_worker()
    assert handle.result(timeout=5) == trace_id  # the job's code runs inside the trace

    by_name = {span.name: span for span in exporter.get_finished_spans()}
    producer, consumer = by_name["send default"], by_name["process default"]
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent.span_id == request.get_span_context().span_id
    assert consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert {format(s.context.trace_id, "032x") for s in (producer, consumer)} == {trace_id}
    for span, operation in ((producer, "send"), (consumer, "process")):
        assert span.attributes["messaging.system"] == "steep"
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["messaging.destination.name"] == "default"
        assert span.attributes["messaging.message.id"] == handle.id
        assert span.attributes["steep.job.name"] == contrib_jobs.current_trace_id.name
    assert consumer.attributes["steep.job.attempt"] == 1
    assert consumer.status.status_code is StatusCode.UNSET


def test_a_failed_run_records_the_exception(client, run_worker, spans):
    _, exporter = spans
    contrib_jobs.fail_with.enqueue("no paper in tray 2")
    run_worker()
    consumer = next(s for s in exporter.get_finished_spans() if s.name == "process default")
    assert consumer.status.status_code is StatusCode.ERROR
    assert consumer.attributes["error.type"] == "ValueError"
    (event,) = consumer.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "no paper in tray 2"


def test_a_batch_makes_sibling_producer_spans_and_no_trace_starts_a_new_one(
    client, run_worker, spans
):
    _, exporter = spans
    handles = contrib_jobs.current_trace_id.enqueue_many([(), ()])
    run_worker()
    producers = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert len(producers) == 2 and all(s.parent is None for s in producers)
    assert {h.result(timeout=5) for h in handles} == {
        format(s.context.trace_id, "032x") for s in producers
    }
