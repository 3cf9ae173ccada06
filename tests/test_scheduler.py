"""Scheduled jobs become due on time and are moved exactly once."""

from __future__ import annotations

import asyncio
import time

from steep.connection import get_keys, make_async_client
from steep.worker.scheduler import promote_due
from tests import jobs
from tests.conftest import holds_for, wait_for


def test_scheduled_job_runs_within_a_second_of_its_time(client, run_worker):
    worker = run_worker(burst=False)
    due_at = time.time() + 0.5
    handle = jobs.add.enqueue_in(0.5, 1, 1)
    assert handle.result(timeout=5) == 2
    finished = time.time()
    assert due_at <= finished < due_at + 1.0
    worker.threadsafe(worker.request_stop)


def test_not_run_before_its_time(client, run_worker):
    worker = run_worker(burst=False)
    asked = time.time()
    handle = jobs.add.enqueue_in(1.0, 1, 1)
    # until half-way at least it must still be waiting: half-way from when the call was
    # made (its due time is counted from there), however long the call itself took
    if (left := asked + 0.5 - time.time()) > 0:
        holds_for(lambda: handle.status.value == "scheduled", left, message="the job scheduled")
    assert handle.result(timeout=5) == 2
    worker.threadsafe(worker.request_stop)


def test_many_promoters_move_each_job_exactly_once(client, settings):
    qk = get_keys().queue("default")
    from steep.connection import SCRIPTS
    from steep.job import Envelope, encode_envelope

    at = time.time() + 0.5
    argv: list = []
    for i in range(2000):
        env = Envelope(id=f"once{i}", name="tests.jobs.record", queue="default", args=["once", i])
        argv += (env.id, encode_envelope(env), int(at * 1000))
    SCRIPTS.enqueue(client, [qk.queued, qk.jobs, qk.state, qk.scheduled], argv)
    assert client.zcard(qk.scheduled) == 2000
    wait_for(lambda: time.time() > at + 0.01, message="jobs to become due")

    async def promoters(n: int) -> None:
        clients = [make_async_client(settings) for _ in range(n)]
        await asyncio.gather(*(promote_due(c, [qk]) for c in clients))
        for c in clients:
            await c.aclose()

    asyncio.run(promoters(8))
    ids = client.lrange(qk.queued, 0, -1)
    assert len(ids) == 2000 and len(set(ids)) == 2000
    assert client.zcard(qk.scheduled) == 0


def test_scheduled_jobs_with_several_workers_run_once(client, run_worker):
    for i in range(300):
        jobs.record.enqueue_in(0.3, "sched-many", i)
    workers = [run_worker(burst=False) for _ in range(3)]
    wait_for(
        lambda: client.scard("test:seen:sched-many") == 300,
        timeout=10,
        message="all scheduled jobs to run",
    )
    for w in workers:
        w.threadsafe(w.request_stop)
    wait_for(lambda: client.zcard(get_keys().workers) == 0, message="workers to stop")
    assert int(client.get("test:runs:sched-many")) == 300
