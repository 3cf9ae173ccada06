"""Slot threads (worker/slots.py): a worker process whose jobs are plain functions runs
each slot as a thread that acknowledges its job and claims the next one itself.

The reliability tests of the whole suite run against slot threads too: `.ci/run` runs them
again with STEEP_WORKER_MODE=threads. The tests here cover what only this path has: the
choice of the mode, its own acknowledgements and claims, the watchdog of timeouts, and
the give-back on shutdown of a job whose thread is still running.
"""

from __future__ import annotations

import threading

import pytest

from steep import JobFailed, JobStatus
from steep.connection import get_keys
from steep.settings import configure
from steep.worker import executor
from tests import slot_jobs
from tests.conftest import cluster_skip, wait_for

pytestmark = cluster_skip("a cluster worker keeps its jobs on the event loop")


# the default, whatever the run's STEEP_WORKER_MODE
AUTO = {"STEEP_WORKER_MODE": "auto"}


@pytest.fixture
def threads_mode(settings):
    return configure(worker_mode="threads")


def test_a_worker_of_plain_functions_picks_slot_threads_by_itself(worker_cli, client):
    handle = slot_jobs.double.enqueue(21)
    cli = worker_cli(
        "worker", "tests.slot_jobs", "-q", "slots", "-p", "1", "--burst", env=AUTO
    )  # fmt: skip
    assert cli.wait(60) == 0
    assert handle.result(timeout=5) == 42
    assert "a thread per slot" in cli.text, cli.text


def test_a_worker_with_async_jobs_keeps_them_on_its_event_loop(worker_cli, client):
    handle = slot_jobs.double.enqueue(2)
    cli = worker_cli(
        "worker", "tests.slot_jobs", "tests.jobs", "-q", "slots", "-p", "1", "--burst", env=AUTO
    )  # fmt: skip
    assert cli.wait(60) == 0
    assert handle.result(timeout=5) == 4
    assert "jobs on the event loop (async jobs are registered" in cli.text, cli.text


def test_worker_mode_loop_is_honoured(worker_cli, client):
    slot_jobs.double.enqueue(3)
    cli = worker_cli(
        "worker", "tests.slot_jobs", "-q", "slots", "-p", "1", "--burst",
        env={"STEEP_WORKER_MODE": "loop"},
    )  # fmt: skip
    assert cli.wait(60) == 0
    assert "jobs on the event loop (worker_mode is loop)" in cli.text, cli.text


def test_slots_run_each_job_once_and_settle_it(threads_mode, client, run_worker):
    handles = [slot_jobs.double.enqueue(i) for i in range(200)]
    worker = run_worker("slots", concurrency=4)
    assert worker.slots is not None
    assert [h.result(timeout=5) for h in handles] == [2 * i for i in range(200)]
    qk = get_keys().queue("slots")
    assert all(client.get(f"test:slots:runs:{i}") == b"1" for i in range(200))
    assert int(client.hget(qk.stats, "processed")) == 200
    assert worker.processed == 200
    # settled: nothing left in flight, no envelope, no state
    assert client.llen(qk.inflight(worker.worker_id)) == 0
    assert client.hlen(qk.jobs) == 0 and client.hlen(qk.state) == 0
    # the per-minute metrics saw every run (the slots hand them to the metrics loop)
    counted = sum(
        int(v)
        for key in client.scan_iter(f"{qk.metrics('*')}")
        for f, v in client.hgetall(key).items()
        if f.endswith(b"|count")
    )
    assert counted == 200


def test_a_lost_connection_at_the_acknowledgement_loses_no_job(threads_mode, client, run_worker):
    import logging

    lines: list[str] = []
    catch = logging.Handler(logging.INFO)
    catch.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    worker_log = logging.getLogger("steep.worker")
    worker_log.addHandler(catch)
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    handles = [slot_jobs.drops_the_connections.enqueue(i) for i in range(5)]
    try:
        worker = run_worker("slots", concurrency=2)
    finally:
        worker_log.removeHandler(catch)
        worker_log.setLevel(level)
    assert worker.slots is not None
    # each job's slot found its connection dead at the ack: the event loop's settler wrote it
    assert [h.result(timeout=10) for h in handles] == list(range(5))
    assert all(h.status is JobStatus.SUCCEEDED for h in handles)
    assert all(client.get(f"test:slots:runs:{i}") == b"1" for i in range(5))
    qk = get_keys().queue("slots")
    assert client.llen(qk.queued) == 0
    assert client.llen(qk.inflight(worker.worker_id)) == 0
    # one "succeeded" line per job, though the settler, not the slot, acknowledged it
    said = [line for line in lines if " succeeded in " in line]
    assert sorted(said) == sorted({line for line in said}) and len(said) == 5, lines


def test_a_job_that_ignores_its_timeout_is_settled_and_the_process_recycled(
    threads_mode, client, run_worker, monkeypatch
):
    monkeypatch.setattr(executor, "THREAD_STOP_GRACE", 0.3)
    handle = slot_jobs.ignores_its_timeout.enqueue(2.0)
    after = slot_jobs.double.enqueue(5)
    worker = run_worker("slots", concurrency=2)
    assert worker.exit_code == 3  # EXIT_RECYCLE: a thread could not be stopped
    with pytest.raises(JobFailed) as info:
        handle.result(timeout=1)
    assert info.value.type == "steep.errors.JobTimeout"
    assert "ran longer than its timeout of 0.2 s" in info.value.message
    assert after.result(timeout=1) == 10
    # when the thread comes back at last it writes nothing over the settlement
    wait_for(lambda: client.get("test:slots:stuck-ended"), timeout=10, message="the sleep")
    wait_for(
        lambda: all(t.current is None for t in worker.slots.threads), message="the slot to park"
    )
    qk = get_keys().queue("slots")
    assert handle.status is JobStatus.DEAD
    assert int(client.hget(qk.stats, "processed")) == 1  # `after` only


def test_shutdown_gives_a_job_back_and_its_late_thread_writes_nothing(
    threads_mode, client, run_worker
):
    configure(worker_mode="threads", shutdown_timeout=0.2)
    handle = slot_jobs.holds.enqueue(1.0)
    worker = run_worker("slots", concurrency=2, burst=False)
    wait_for(lambda: client.get("test:slots:holding"), message="the job to start")
    thread = threading.Thread(target=worker.threadsafe, args=(worker.request_stop, "test"))
    thread.start()
    thread.join()
    qk = get_keys().queue("slots")
    # back at the front of its queue, its envelope kept
    wait_for(lambda: client.lrange(qk.queued, 0, -1) == [handle.id.encode()], message="give back")
    wait_for(lambda: client.get("test:slots:held-ended"), timeout=10, message="the thread")
    # the thread finished after the give-back: the job is still queued, whole
    assert client.lrange(qk.queued, 0, -1) == [handle.id.encode()]
    assert client.hexists(qk.jobs, handle.id)
    assert handle.status is JobStatus.QUEUED
    assert client.hget(qk.stats, "processed") is None


def test_a_script_flush_while_the_slots_work_loses_and_repeats_nothing(
    threads_mode, client, run_worker
):
    worker = run_worker("slots", concurrency=4, burst=False)
    assert worker.slots is not None and worker.slots.listen_queue == "slots"
    handles = [slot_jobs.double.enqueue(i) for i in range(300)]

    def runs() -> int:
        return sum(1 for _ in client.scan_iter("test:slots:runs:*"))

    wait_for(lambda: runs() >= 20, message="the slots to be busy")
    # the acks and claims in flight now meet NOSCRIPT: the settler and a reload take over
    client.script_flush()
    assert [h.result(timeout=10) for h in handles] == [2 * i for i in range(300)]
    assert all(client.get(f"test:slots:runs:{i}") == b"1" for i in range(300))
    qk = get_keys().queue("slots")
    wait_for(lambda: client.hget(qk.stats, "processed") == b"300", message="every ack")
