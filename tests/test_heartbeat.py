"""Heartbeats: reaping vanished workers, sweeping orphans, strays, remote control."""

from __future__ import annotations

import json
import time

from steep.connection import SCRIPTS, get_keys
from steep.worker.heartbeat import reap_expired, sweep_orphans
from tests import jobs
from tests.conftest import cluster_skip, holds_for, wait_for


def strand(client, job_id_owner: str, handle) -> None:
    """Move a queued job into `job_id_owner`'s in-flight list, as a fetch would."""
    qk = get_keys().queue(handle.queue)
    SCRIPTS.claim(
        client,
        [qk.queued, qk.inflight(job_id_owner), qk.jobs, qk.state, qk.paused],
        [1, f"running {job_id_owner} {int(time.time() * 1000)}"],
    )


def test_reaper_returns_jobs_of_an_expired_worker(client):
    keys = get_keys()
    handle = jobs.add.enqueue(1, 2)
    strand(client, "ghost-1", handle)
    assert handle.status.value == "running"
    client.zadd(keys.workers, {"ghost-1": int((time.time() - 60) * 1000)})
    client.hset(keys.worker("ghost-1"), "queues", json.dumps(["default"]))
    reaped = reap_expired(client, keys, timeout=10)
    assert reaped == {"ghost-1": 1}
    assert handle.status.value == "queued"
    assert client.zscore(keys.workers, "ghost-1") is None
    assert not client.exists(keys.worker("ghost-1"))


def test_reaper_leaves_live_workers_alone(client):
    keys = get_keys()
    handle = jobs.add.enqueue(1, 2)
    strand(client, "alive-1", handle)
    client.zadd(keys.workers, {"alive-1": int(time.time() * 1000)})
    assert reap_expired(client, keys, timeout=10) == {}
    assert handle.status.value == "running"


def test_sweep_returns_jobs_of_unregistered_workers(client):
    keys = get_keys()
    lost = jobs.add.enqueue(1, 2)
    kept = jobs.add.enqueue(3, 4)
    strand(client, "nobody-1", lost)
    strand(client, "alive-2", kept)
    client.zadd(keys.workers, {"alive-2": int(time.time() * 1000)})
    assert sweep_orphans(client, keys) == 1
    assert lost.status.value == "queued" and kept.status.value == "running"


def test_stray_ids_in_own_inflight_list_are_returned(client, run_worker):
    worker = run_worker(burst=False, queues="other")  # not listening on default
    worker.qkeys["default"] = get_keys().queue("default")
    handle = jobs.add.enqueue(1, 2)
    strand(client, worker.worker_id, handle)
    worker.heartbeat.reconcile(set())
    assert handle.status.value == "running"  # one sighting is not enough
    worker.heartbeat.reconcile(set())
    assert handle.status.value == "queued"
    del worker.qkeys["default"]


def test_remote_quiet_and_stop(client, run_worker):
    keys = get_keys()
    worker = run_worker(burst=False)
    client.rpush(keys.worker_signals(worker.worker_id), "quiet")
    wait_for(lambda: client.hget(keys.worker(worker.worker_id), "quiet") == b"1", message="quiet")
    handle = jobs.add.enqueue(1, 1)
    # an active worker would have run it long before this (a fetch already blocked when
    # the worker went quiet may take it and hand it straight back, never running it)
    holds_for(lambda: handle.status.value != "succeeded", 0.5, message="the job not run")
    wait_for(lambda: handle.status.value == "queued", message="the job back in its queue")
    client.rpush(keys.worker_signals(worker.worker_id), "stop")
    wait_for(lambda: client.zscore(keys.workers, worker.worker_id) is None, message="stop")


@cluster_skip("it counts the blocked clients of one server (INFO clients)")
def test_quiet_ends_a_blocked_fetch_at_once(client, run_worker, monkeypatch):
    """A worker idle in its blocking fetch goes quiet at once (CLIENT UNBLOCK): a job that
    arrives right after is not taken, not even to be handed back."""
    from steep.worker import fetch

    monkeypatch.setattr(fetch, "BLOCK_TIMEOUT", 30.0)  # a fetch that ends by itself: 30 s
    keys = get_keys()
    worker = run_worker(burst=False)

    def blocked() -> int:
        return int(client.info("clients")["blocked_clients"])

    def waiting() -> object:  # the fetcher's wait, or a slot thread's (STEEP_WORKER_MODE)
        return worker.fetcher.block_ids or (worker.slots and worker.slots.listening())

    wait_for(lambda: blocked() == 1 and waiting(), message="a blocked fetch")
    worker.threadsafe(worker.request_quiet)
    wait_for(lambda: blocked() == 0, message="the blocked fetch to end")
    handle = jobs.add.enqueue(1, 1)
    holds_for(lambda: handle.status.value == "queued", 0.5, message="the job left alone")
    assert client.hget(keys.worker(worker.worker_id), "busy") in (None, b"0")
    worker.threadsafe(worker.request_stop, "test over")
    wait_for(lambda: client.zscore(keys.workers, worker.worker_id) is None, message="stop")
