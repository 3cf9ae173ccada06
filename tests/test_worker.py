"""The worker: running jobs (sync and async), results, queues, failures."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from steep import JobFailed, JobStatus, ops
from steep.connection import SCRIPTS, get_keys
from steep.job import Envelope, encode_envelope
from tests import jobs
from tests.conftest import wait_for


def test_sync_and_async_jobs_run_and_return_results(client, run_worker):
    a = jobs.add.enqueue(2, 3)
    b = jobs.async_add.enqueue(4, 5)
    run_worker()
    assert a.result(timeout=1) == 5
    assert b.result(timeout=1) == 9
    assert a.status is JobStatus.SUCCEEDED
    qk = get_keys().queue("default")
    assert client.hlen(qk.jobs) == 0 and client.hlen(qk.state) == 0
    assert int(client.hget(qk.stats, "processed")) == 2


def test_result_blocks_until_the_job_finishes(client, run_worker):
    handle = jobs.add.enqueue(20, 22)
    worker = run_worker(burst=False)
    started = time.monotonic()
    assert handle.result(timeout=5) == 42
    assert time.monotonic() - started < 5
    worker.threadsafe(worker.request_stop)


def test_result_timeout(client):
    handle = jobs.add.enqueue(1, 1)
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
        handle.result(timeout=0.2)


def test_job_without_result_ttl_leaves_no_record(client, run_worker):
    handle = jobs.record.enqueue("norecord", 1)
    run_worker()
    assert handle.status is None
    assert client.get("test:runs:norecord") == b"1"


def test_typed_arguments_are_restored(client, run_worker):
    when = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    handle = jobs.typed.enqueue(when, date(2026, 5, 6), ident, Decimal("1.10"), jobs.Point(4, when))
    run_worker()
    assert handle.result(timeout=1) == (
        "2026-05-06T07:08:09+00:00|2026-05-06|12345678-1234-5678-1234-567812345678|1.10|4"
    )


def test_many_jobs_all_run_exactly_once_with_one_worker(client, run_worker):
    jobs.record.enqueue_many([("many", i) for i in range(3000)])
    jobs.async_record.enqueue_many([("many", i) for i in range(3000, 4000)])
    run_worker(concurrency=20)
    assert client.scard("test:seen:many") == 4000
    assert int(client.get("test:runs:many")) == 4000
    qk = get_keys().queue("default")
    assert client.llen(qk.queued) == 0 and client.hlen(qk.jobs) == 0


def test_strict_queue_priority(client, run_worker):
    for i in range(5):
        jobs.on_low.enqueue("prio", i)
    for i in range(5):
        jobs.on_critical.enqueue("prio", i)
    run_worker("critical,low", concurrency=1)
    order = [x.decode() for x in client.lrange("test:prio", 0, -1)]
    assert order == [f"critical {i}" for i in range(5)] + [f"low {i}" for i in range(5)]


def test_weighted_queues_take_from_both(client, run_worker):
    for i in range(200):
        jobs.on_low.enqueue("weighted", i)
        jobs.on_critical.enqueue("weighted", i)
    run_worker("critical:3,low:1", concurrency=1)
    order = [x.decode().split()[0] for x in client.lrange("test:weighted", 0, -1)]
    assert len(order) == 400
    first_half = order[:200]
    # weighted, not strict: low jobs run before critical is empty, but critical dominates
    assert 0 < first_half.count("low") < first_half.count("critical")


def test_lone_job_on_idle_worker_starts_at_once(client, run_worker):
    worker = run_worker(burst=False)
    time.sleep(0.05)  # let the worker reach its blocking wait
    handle = jobs.add.enqueue(1, 2)
    started = time.monotonic()
    assert handle.result(timeout=5) == 3
    # blocking fetch: far below the 1 s block timeout
    assert time.monotonic() - started < 0.5
    worker.threadsafe(worker.request_stop)


def test_unknown_job_name_goes_to_dead_set(client, run_worker):
    qk = get_keys().queue("default")
    env = Envelope(id="unknown1", name="nowhere.missing", queue="default", args=[1])
    SCRIPTS.enqueue(
        client, [qk.queued, qk.jobs, qk.state, qk.scheduled], ["unknown1", encode_envelope(env), 0]
    )
    ok = jobs.add.enqueue(1, 1)
    run_worker()
    assert ok.result(timeout=1) == 2  # the worker kept going
    assert client.zscore(qk.dead, "unknown1") is not None
    error = client.hget(qk.errors, "unknown1").decode()
    assert "UnknownJob" in error and "nowhere.missing" in error
    assert client.hget(qk.jobs, "unknown1") is not None  # kept, can be retried later


def test_job_failed_says_the_reason_steep_gave_up(client, run_worker):
    from steep import Job, JobFailed

    qk = get_keys().queue("default")
    env = Envelope(id="unknown2", name="nowhere.missing", queue="default", result_ttl=60)
    SCRIPTS.enqueue(
        client, [qk.queued, qk.jobs, qk.state, qk.scheduled], ["unknown2", encode_envelope(env), 0]
    )
    raised = jobs.always_fails.options(retries=0).enqueue("reason")
    run_worker()
    with pytest.raises(JobFailed) as caught:
        Job("unknown2", "default", keeps_result=True).result(timeout=5)
    assert caught.value.reason == "UnknownJob" and caught.value.type == "steep.UnknownJob"
    with pytest.raises(JobFailed) as caught:
        raised.result(timeout=5)
    assert caught.value.reason == "" and caught.value.type == "builtins.ValueError"


def test_undecodable_payload_goes_to_dead_set(client, run_worker):
    qk = get_keys().queue("default")
    SCRIPTS.enqueue(
        client, [qk.queued, qk.jobs, qk.state, qk.scheduled], ["garbage1", b"\x00not json{", 0]
    )
    ok = jobs.add.enqueue(2, 2)
    run_worker()
    assert ok.result(timeout=1) == 4
    assert client.zscore(qk.dead, "garbage1") is not None
    assert b"BadPayload" in client.hget(qk.errors, "garbage1")
    assert client.hget(qk.jobs, "garbage1") == b"\x00not json{"  # raw payload kept


def test_argument_mismatch_goes_to_dead_set(client, run_worker):
    qk = get_keys().queue("default")
    env = Envelope(id="mismatch1", name="tests.jobs.add", queue="default", args=[1, 2, 3])
    SCRIPTS.enqueue(
        client, [qk.queued, qk.jobs, qk.state, qk.scheduled], ["mismatch1", encode_envelope(env), 0]
    )
    wrong_type = Envelope(
        id="mismatch2",
        name="tests.jobs.typed",
        queue="default",
        args=["not a date", "x", "y", "z", {}],
    )
    SCRIPTS.enqueue(
        client,
        [qk.queued, qk.jobs, qk.state, qk.scheduled],
        ["mismatch2", encode_envelope(wrong_type), 0],
    )
    run_worker()
    for job_id in ("mismatch1", "mismatch2"):
        assert client.zscore(qk.dead, job_id) is not None
        assert b"ArgumentMismatch" in client.hget(qk.errors, job_id)


def test_unencodable_result_is_reported(client, run_worker):
    handle = jobs.returns_object.enqueue()
    run_worker()
    with pytest.raises(JobFailed, match="UnencodableResult"):
        handle.result(timeout=1)


def test_current_job_and_attempts(client, run_worker):
    handle = jobs.fails_then_succeeds.enqueue("attempts", 2)
    run_worker()
    assert handle.result(timeout=1) == 3
    assert [x.decode() for x in client.lrange("test:attempts", 0, -1)] == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
    ]


def test_pid_of_in_process_worker(client, run_worker):
    import os

    handle = jobs.whoami.enqueue()
    run_worker()
    assert handle.result(timeout=1) == os.getpid()


def test_heartbeat_registers_and_unregisters(client, run_worker):
    keys = get_keys()
    worker = run_worker(burst=False)
    assert client.zscore(keys.workers, worker.worker_id) is not None
    info = client.hgetall(keys.worker(worker.worker_id))
    assert info[b"concurrency"] == b"10"
    worker.threadsafe(worker.request_stop)
    wait_for(
        lambda: client.zscore(keys.workers, worker.worker_id) is None,
        message="worker to unregister",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("timeout", -5, "`float` > 0.0 - at `$.timeout`"), ("retries", -1, "`int` >= 0")],
)
def test_an_envelope_with_an_impossible_limit_is_a_bad_payload(
    client, run_worker, field, value, message
):
    qk = get_keys().queue("default")
    raw = json.dumps({"id": "bad1", "name": "tests.jobs.add", "queue": "default", "args": [1, 2]})
    raw = raw[:-1] + f', "{field}": {value}}}'
    SCRIPTS.enqueue(client, [qk.queued, qk.jobs, qk.state, qk.scheduled], ["bad1", raw, 0])
    run_worker()
    assert client.zscore(qk.dead, "bad1") is not None  # never run, never retried
    error = client.hget(qk.errors, "bad1").decode()
    assert "BadPayload" in error and message in error


def test_an_id_without_envelope_is_logged_and_counted(client, run_worker, caplog):
    qk = get_keys().queue("default")
    client.lpush(qk.queued, "ghost1")  # its envelope is gone (deleted by hand)
    ok = jobs.add.enqueue(1, 1)
    with caplog.at_level(logging.WARNING, logger="steep.worker"):
        run_worker()
    assert ok.result(timeout=1) == 2
    assert "job ghost1 in queue default has no envelope" in caplog.text
    assert ops.queue("default").missing == 1
    assert client.llen(qk.queued) == 0 and not client.hexists(qk.jobs, "ghost1")
