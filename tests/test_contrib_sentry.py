"""SentryMiddleware with the real sentry_sdk.

Envelopes are collected by a custom `transport`, Sentry's documented way of testing
what the SDK would send: everything up to the network is real, and nothing leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from steep import middleware
from steep.connection import get_keys
from steep.contrib.sentry import SentryMiddleware
from steep.job import decode_envelope
from tests import contrib_jobs, jobs


class Collect(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == kind
        ]


@pytest.fixture
def sentry() -> Iterator[Collect]:
    transport = Collect()
    # default_integrations=False: the SDK's integrations patch threading and logging for
    # the rest of the test process; this test needs only the middleware.
    sentry_sdk.init(
        dsn="https://public@sentry.example/1",
        transport=transport,
        traces_sample_rate=1.0,
        default_integrations=False,
    )
    middleware.add(SentryMiddleware())
    yield transport
    middleware.clear()
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def test_the_jobs_exception_is_captured_with_job_tags(client, run_worker, sentry):
    with sentry_sdk.start_transaction(op="http.server", name="POST /print") as request:
        handle = contrib_jobs.fail_with.enqueue("no paper in tray 2")
    stored = decode_envelope(client.hget(get_keys().queue("default").jobs, handle.id))
    assert stored.meta["sentry"]["sentry-trace"].startswith(request.trace_id)

    run_worker()
    sentry_sdk.flush()
    (error,) = sentry.items("event")
    (exception,) = error["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert exception["value"] == "no paper in tray 2"
    assert exception["mechanism"] == {"type": "steep", "handled": False}
    assert error["tags"] == {
        "steep.job": contrib_jobs.fail_with.name,
        "steep.queue": "default",
        "steep.attempt": "1",
    }
    assert error["contexts"]["steep job"]["id"] == handle.id
    # the error and the job's transaction continue the request's trace
    assert error["contexts"]["trace"]["trace_id"] == request.trace_id
    transactions = {t["transaction"]: t for t in sentry.items("transaction")}
    run = transactions[contrib_jobs.fail_with.name]
    assert run["contexts"]["trace"]["op"] == "queue.process"
    assert run["contexts"]["trace"]["trace_id"] == request.trace_id
    assert run["contexts"]["trace"]["status"] == "internal_error"
    publish = [s for s in transactions["POST /print"]["spans"] if s["op"] == "queue.publish"]
    assert [s["data"]["messaging.message.id"] for s in publish] == [handle.id]
    assert run["contexts"]["trace"]["parent_span_id"] == publish[0]["span_id"]


def test_scopes_do_not_leak_between_jobs_and_success_is_not_an_error(client, run_worker, sentry):
    contrib_jobs.fail_with.enqueue("first")
    ok = jobs.add.enqueue(1, 2)
    run_worker(concurrency=1)
    assert ok.result(timeout=5) == 3
    sentry_sdk.flush()
    (error,) = sentry.items("event")
    assert error["exception"]["values"][0]["value"] == "first"
    transactions = {t["transaction"]: t for t in sentry.items("transaction")}
    assert transactions[jobs.add.name]["contexts"]["trace"]["status"] == "ok"
    assert transactions[jobs.add.name]["tags"]["steep.job"] == jobs.add.name
    # nothing a job put in its scope is left in the test thread's scope
    assert "steep.job" not in sentry_sdk.get_isolation_scope()._tags


def test_a_cancelled_job_is_not_reported(client, run_worker, sentry):
    from steep.ops.jobs.actions import cancel_job
    from tests.conftest import wait_for

    handle = jobs.sleepy.enqueue(30)
    worker = run_worker(burst=False)
    wait_for(lambda: handle.id in worker.running, message="job running")
    cancel_job(handle.queue, handle.id)
    wait_for(lambda: handle.status is not None and handle.status.value == "dead", message="dead")
    sentry_sdk.flush()
    assert sentry.items("event") == []
    (run,) = sentry.items("transaction")
    assert run["contexts"]["trace"]["status"] == "cancelled"
