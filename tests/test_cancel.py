"""Cancelling running jobs through a worker's control channel."""

from __future__ import annotations

import json

from steep import JobStatus
from steep.connection import get_keys
from steep.job import parse_state
from tests import jobs
from tests.conftest import wait_for


def cancel(client, handle) -> None:
    qk = get_keys().queue(handle.queue)
    _, worker_id, _ = parse_state(client.hget(qk.state, handle.id))
    client.rpush(get_keys().worker_signals(worker_id), f"cancel {handle.queue} {handle.id}")


def test_cancel_async_job(client, run_worker):
    worker = run_worker(burst=False)
    handle = jobs.async_record.enqueue("cancel-async", 1, 30.0)
    wait_for(lambda: handle.status is JobStatus.RUNNING, message="job start")
    cancel(client, handle)
    wait_for(lambda: handle.status is JobStatus.DEAD, message="job cancelled")
    error = json.loads(client.hget(get_keys().queue("default").errors, handle.id))
    assert error["type"] == "steep.Cancelled"
    assert client.get("test:runs:cancel-async") is None  # it never got past its sleep
    assert worker.running == {}


def test_cancel_thread_job(client, run_worker):
    worker = run_worker(burst=False)
    handle = jobs.spin.enqueue("cancel-thread", 30.0)
    wait_for(
        lambda: client.lrange("test:cancel-thread", 0, -1) == [b"started"], message="job start"
    )
    cancel(client, handle)
    wait_for(lambda: handle.status is JobStatus.DEAD, message="job cancelled")
    error = json.loads(client.hget(get_keys().queue("default").errors, handle.id))
    assert error["type"] == "steep.Cancelled"
    assert client.lrange("test:cancel-thread", 0, -1) == [b"started"]  # never finished
    # cancelled, not retried, although the job allows 3 retries
    assert client.zcard(get_keys().queue("default").scheduled) == 0
    assert worker.exit_code == 0


def test_cancel_of_a_job_not_running_here_is_ignored(client, run_worker):
    worker = run_worker(burst=False)
    client.rpush(get_keys().worker_signals(worker.worker_id), "cancel default nope")
    handle = jobs.add.enqueue(1, 2)
    assert handle.result(timeout=5) == 3  # still working
