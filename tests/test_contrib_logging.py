"""LogContext: the enqueuing code's logging context reaches the job's log records."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from steep import middleware
from steep.connection import get_keys
from steep.contrib.logging import ContextFilter, LogContext, bind, current
from steep.job import decode_envelope
from tests import contrib_jobs


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    level = contrib_jobs.log.level
    contrib_jobs.log.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    contrib_jobs.log.setLevel(level)
    middleware.clear()


def test_request_id_reaches_the_jobs_log_records(client, run_worker, collected):
    middleware.add(LogContext())
    with bind(request_id="req-7", tenant="acme"):
        sync = contrib_jobs.log_line.enqueue("hello from a thread job")
        aio = contrib_jobs.async_log_line.enqueue("hello from an async job")
    assert current() == {}  # bind's block is over
    stored = decode_envelope(client.hget(get_keys().queue("default").jobs, sync.id))
    assert stored.meta["log"] == {"request_id": "req-7", "tenant": "acme"}
    run_worker()
    sync.result(timeout=5), aio.result(timeout=5)
    lines = {r.getMessage(): r for r in collected.records if r.name == contrib_jobs.log.name}
    for message, handle in (
        ("hello from a thread job", sync),
        ("hello from an async job", aio),
    ):
        record = lines[message]
        assert record.request_id == "req-7"  # type: ignore[attr-defined]
        assert record.tenant == "acme"  # type: ignore[attr-defined]
        assert record.job_id == handle.id  # type: ignore[attr-defined]
        assert record.job_name == handle.name  # type: ignore[attr-defined]
        assert record.job_queue == "default"  # type: ignore[attr-defined]
        assert record.job_attempt == 1  # type: ignore[attr-defined]
    # the filter went on the handlers of the root logger, and the context ended with the job
    assert any(isinstance(f, ContextFilter) for f in collected.filters)
    logging.getLogger("tests.contrib_jobs").info("after the jobs")
    assert not hasattr(collected.records[-1], "request_id")


def test_named_contextvars_and_structlog_travel_and_are_reset(client, run_worker, collected):
    middleware.add(LogContext(carry=["tests.contrib_jobs:request_id"]))
    token = contrib_jobs.request_id.set("req-var")
    try:
        with structlog.contextvars.bound_contextvars(user="ann"):
            first = contrib_jobs.log_line.enqueue("carried")
    finally:
        contrib_jobs.request_id.reset(token)
    plain = contrib_jobs.log_line.enqueue("not carried")
    run_worker(concurrency=1)  # one pool thread runs both: the second must not inherit
    seen = first.result(timeout=5)
    assert seen["request_id"] == "req-var"
    assert seen["structlog"]["user"] == "ann"
    assert seen["structlog"]["job_id"] == first.id
    after = plain.result(timeout=5)
    assert after["request_id"] == "-"
    assert "user" not in after["structlog"] and after["structlog"]["job_id"] == plain.id


def test_extra_fields_win_over_the_context():
    handler = Collect()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.contrib_logging.extra")
    logger.addHandler(handler)
    try:
        with bind(request_id="from-context"):
            logger.warning("explicit", extra={"request_id": "from-extra"})
            logger.warning("implicit")
    finally:
        logger.removeHandler(handler)
    assert [r.request_id for r in handler.records] == ["from-extra", "from-context"]  # type: ignore[attr-defined]


def test_a_value_that_is_not_json_travels_as_text(client, run_worker, collected):
    middleware.add(LogContext())
    with bind(request_id=object.__new__(type("Rid", (), {"__str__": lambda self: "rid-9"}))):
        handle = contrib_jobs.log_line.enqueue("odd value")
    run_worker()
    handle.result(timeout=5)
    record = next(r for r in collected.records if r.getMessage() == "odd value")
    assert record.request_id == "rid-9"  # type: ignore[attr-defined]
