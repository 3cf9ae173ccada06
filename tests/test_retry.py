"""Failures: retries with backoff, retry_on, the dead set and its bounds."""

from __future__ import annotations

import json

import pytest

from steep import JobFailed, JobStatus
from steep.connection import get_keys
from steep.worker.retry import backoff_delay
from tests import jobs


def test_backoff_grows_exponentially_with_jitter():
    for attempt, expected in [(1, 5), (2, 10), (3, 20), (4, 40)]:
        delays = [backoff_delay(attempt, 5, 3600) for _ in range(200)]
        assert min(delays) >= expected * 0.75 and max(delays) <= expected * 1.25
        assert len(set(delays)) > 100  # jittered
    assert backoff_delay(30, 5, 60) <= 60 * 1.25


def test_retry_then_success(client, run_worker):
    handle = jobs.fails_then_succeeds.enqueue("retry", 1)
    run_worker()
    assert handle.result(timeout=1) == 2
    qk = get_keys().queue("default")
    assert int(client.hget(qk.stats, "failed")) == 1
    assert int(client.hget(qk.stats, "processed")) == 1
    assert client.hlen(qk.errors) == 0  # the error of the failed attempt went with the job


def test_failed_job_waits_in_scheduled_set_with_its_error(client, run_worker):
    handle = jobs.fails_then_succeeds.options(backoff=600).enqueue("waiting", 5)
    worker = run_worker(burst=False)
    qk = get_keys().queue("default")
    from tests.conftest import wait_for

    wait_for(lambda: handle.status is JobStatus.RETRYING, message="job to fail once")
    worker.threadsafe(worker.request_stop)
    assert client.zscore(qk.scheduled, handle.id) is not None
    error = json.loads(client.hget(qk.errors, handle.id))
    assert error["type"] == "builtins.ConnectionError"
    assert error["message"] == "attempt 1 failed on purpose"
    assert "Traceback" in error["traceback"] and error["attempt"] == 1


def test_exhausted_retries_go_to_dead_set(client, run_worker):
    handle = jobs.always_fails.enqueue("dead")
    run_worker()
    assert handle.status is JobStatus.DEAD
    assert client.llen("test:dead") == 3  # first run + 2 retries
    qk = get_keys().queue("default")
    assert client.zscore(qk.dead, handle.id) is not None
    with pytest.raises(JobFailed) as info:
        handle.result(timeout=1)
    assert info.value.type == "builtins.ValueError"
    assert info.value.message == "this job always fails"
    assert "raise ValueError" in info.value.traceback


def test_retries_zero_goes_straight_to_dead(client, run_worker):
    handle = jobs.always_fails.options(retries=0).enqueue("noretry")
    run_worker()
    assert handle.status is JobStatus.DEAD
    assert client.llen("test:noretry") == 1


def test_retry_on_limits_which_errors_retry(client, run_worker):
    transient = jobs.selective.enqueue("sel-t", "transient")
    permanent = jobs.selective.enqueue("sel-p", "permanent")
    run_worker()
    assert client.llen("test:sel-t") == 6  # 1 + 5 retries
    assert client.llen("test:sel-p") == 1  # not in retry_on: dead at once
    assert transient.status is JobStatus.DEAD and permanent.status is JobStatus.DEAD


def test_dead_set_is_bounded_by_size(client, run_worker, settings):
    from steep.settings import configure

    configure(dead_max_jobs=5)
    handles = jobs.always_fails.options(retries=0).enqueue_many([("bounded",)] * 8)
    run_worker()
    qk = get_keys().queue("default")
    assert client.zcard(qk.dead) == 5
    kept = {m.decode() for m in client.zrange(qk.dead, 0, -1)}
    assert kept <= {h.id for h in handles}
    # buried jobs leave nothing behind
    assert client.hlen(qk.jobs) == 5 and client.hlen(qk.errors) == 5


def test_dead_set_is_bounded_by_age(client, run_worker, settings):
    from steep.settings import configure

    jobs.always_fails.options(retries=0).enqueue("old")
    run_worker()
    qk = get_keys().queue("default")
    assert client.zcard(qk.dead) == 1
    configure(dead_ttl=0.001)
    jobs.always_fails.options(retries=0).enqueue("new")
    import time

    time.sleep(0.01)
    run_worker()
    # the older one expired when the next death trimmed the set
    assert client.zcard(qk.dead) == 1


def test_timeout_async_job(client, run_worker):
    handle = jobs.sleeps_too_long_async.enqueue(5)
    run_worker()
    with pytest.raises(JobFailed) as info:
        handle.result(timeout=1)
    assert info.value.type == "steep.errors.JobTimeout"


def test_timeout_sync_job_interrupts_thread(client, run_worker):
    handle = jobs.sleeps_too_long_sync.enqueue(5)
    ok = jobs.add.enqueue(1, 1)
    worker = run_worker()
    with pytest.raises(JobFailed) as info:
        handle.result(timeout=1)
    assert info.value.type == "steep.errors.JobTimeout"
    assert ok.result(timeout=1) == 2
    assert worker.exit_code == 0  # the thread stopped, no recycle needed


def test_timeout_counts_as_failure_and_retries(client, run_worker):
    handle = jobs.sleeps_too_long_async.options(retries=1, backoff=0.01).enqueue(5)
    run_worker()
    assert handle.status is JobStatus.DEAD
    qk = get_keys().queue("default")
    assert int(client.hget(qk.stats, "failed")) == 2


def test_backoff_given_per_call_reaches_the_worker(client, run_worker):
    # the decorator says 0.05 s; the call says 600 s, and the retry waits 600 s (±25 %)
    import time

    from tests.conftest import wait_for

    handle = jobs.fails_then_succeeds.options(backoff=600).enqueue("per-call", 5)
    envelope = json.loads(client.hget(get_keys().queue("default").jobs, handle.id))
    assert (envelope["backoff"], envelope["max_backoff"]) == (600, 3600)
    worker = run_worker(burst=False)
    wait_for(lambda: handle.status is JobStatus.RETRYING, message="the first attempt to fail")
    worker.threadsafe(worker.request_stop)
    due = client.zscore(get_keys().queue("default").scheduled, handle.id) / 1000
    assert 440 < due - time.time() < 760
    # a plain call carries nothing: the worker uses the decorator's values
    plain = jobs.fails_then_succeeds.enqueue("plain", 0)
    assert "backoff" not in json.loads(client.hget(get_keys().queue("default").jobs, plain.id))


def test_per_call_backoff_survives_further_options_and_signatures(client):
    slow = jobs.fails_then_succeeds.options(backoff=600, max_backoff=900)
    handle = jobs.fails_then_succeeds.options(max_backoff=600, retries=1).enqueue("capped", 5)
    envelope = json.loads(client.hget(get_keys().queue("default").jobs, handle.id))
    # the decorator's backoff, the call's cap
    assert (envelope["backoff"], envelope["max_backoff"], envelope["retries"]) == (0.05, 600, 1)
    again = slow.opts.replace(retries=1)  # later changes keep what the call set
    assert again.per_call == {"backoff", "max_backoff"} and again.backoff == 600
    step = slow.s("sig", 5)
    assert (step.options["backoff"], step.options["max_backoff"]) == (600, 900)
    queued = step.enqueue()
    envelope = json.loads(client.hget(get_keys().queue("default").jobs, queued.id))
    assert (envelope["backoff"], envelope["max_backoff"]) == (600, 900)


def test_retry_on_per_call_is_refused_not_ignored():
    with pytest.raises(TypeError, match=r"retry_on cannot be set per call.*@job\(retry_on"):
        jobs.fails_then_succeeds.options(retry_on=(KeyError,))
    with pytest.raises(ValueError, match="backoff <= max_backoff"):
        jobs.fails_then_succeeds.options(backoff=10, max_backoff=1)
