"""steep.ops.queues and workers: sizes, pause/resume, clear, quiet/stop."""

from __future__ import annotations

import time

import pytest

from steep import ops
from steep.connection import get_keys
from tests import jobs
from tests.conftest import wait_for


def test_pause_keeps_workers_off_the_queue_until_resumed(client, run_worker):
    ops.pause("default")
    handle = jobs.add.enqueue(1, 1)
    assert ops.queue("default").paused
    run_worker("default,low", burst=False)
    # the worker is busy on the other queue, yet leaves the paused one alone
    jobs.on_low.enqueue("pause", 1)
    wait_for(lambda: client.llen("test:pause"), message="the job on the other queue")
    assert ops.get_job("default", handle.id).state == "queued"
    ops.resume("default")
    assert not ops.queue("default").paused
    assert handle.result(timeout=5) == 2


def test_an_idle_worker_does_not_spin_on_a_paused_queue_that_holds_jobs(client, run_worker, server):
    # Its blocking fetch takes a job of the paused queue at once and the claim gives it back:
    # without a pause between the two it did that thousands of times a second.
    if not server.restartable:
        pytest.skip("counts the server's commands: needs the suite's own server, used alone")
    ops.pause("default")
    handle = jobs.add.enqueue(2, 3)
    run_worker(burst=False)
    client.config_resetstat()
    wait_for(
        lambda: client.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0) >= 2,
        message="the worker to block on the queue twice",
    )
    started = time.monotonic()
    time.sleep(1.0)  # the window measured: how many fetches happen in it
    calls = client.info("commandstats").get("cmdstat_blmove", {}).get("calls", 0)
    rate = calls / (time.monotonic() - started + 1.0)
    assert rate < 40, f"{calls} blocking fetches in about a second"
    ops.resume("default")
    assert handle.result(timeout=5) == 5


def test_clear_drops_waiting_jobs_in_batches(client):
    jobs.add.enqueue_many([(i, i) for i in range(25)])
    later = jobs.add.enqueue_in(600, 1, 1)
    assert ops.clear("default", batch=10) == 25
    info = ops.queue("default")
    assert info.size == 0 and info.scheduled == 1
    assert client.hlen(get_keys().queue("default").jobs) == 1
    assert ops.get_job("default", later.id).state == "scheduled"


def test_quiet_and_stop_a_worker_remotely(client, run_worker):
    worker = run_worker(burst=False)
    listed = wait_for(ops.workers, message="the worker to register")
    assert listed[0].id == worker.worker_id and listed[0].queues == ["default"]
    ops.quiet(worker.worker_id)
    wait_for(lambda: ops.workers()[0].quiet, message="the worker to go quiet")
    ops.stop(worker.worker_id)
    wait_for(lambda: not ops.workers(), message="the worker to stop")


def test_status_keeps_its_shape(client):
    jobs.add.enqueue(1, 1)
    data = ops.status()
    assert data["totals"]["queued"] == 1
    assert data["queues"][0]["name"] == "default"
