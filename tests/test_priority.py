"""Priority within a queue (steep.features.priority): higher first, FIFO within a priority."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from steep import ops
from steep.connection import SCRIPTS, get_keys
from steep.features.priority import WAKE_TOKEN
from steep.worker import fetch as process  # BLOCK_TIMEOUT is read in fetch
from steep.worker.scheduler import promote_due
from tests import jobs
from tests.conftest import ROOT, cluster_skip, wait_for


def _enqueue_mix() -> dict[str, str]:
    """Plain and prioritized jobs, interleaved; returns label -> job id."""
    ids = {}
    for label, level in [
        ("a1", 0),
        ("low1", -1),
        ("p5-1", 5),
        ("a2", 0),
        ("p1", 1),
        ("p5-2", 5),
        ("low2", -1),
        ("a3", 0),
    ]:
        ids[label] = jobs.note.options(priority=level).enqueue("order", label).id
    return ids


RUN_ORDER = ["p5-1", "p5-2", "p1", "a1", "a2", "a3", "low1", "low2"]


def test_higher_priority_runs_first_and_fifo_within_a_priority(client, run_worker):
    _enqueue_mix()
    run_worker(concurrency=1)
    assert [x.decode() for x in client.lrange("test:order", 0, -1)] == RUN_ORDER


def test_a_batch_claim_takes_priorities_first(client, run_worker):
    _enqueue_mix()
    # one claim of 4 takes the three prioritized jobs and the oldest plain one
    qk = get_keys().queue("default")
    keys = [qk.queued, qk.inflight("w"), qk.jobs, qk.state, qk.paused, qk.prioritized]
    items = SCRIPTS.claim(client, keys, [4, "running w 1"])
    labels = [ops.get_job("default", items[i].decode()).args[1] for i in range(0, len(items), 2)]
    assert labels == ["p5-1", "p5-2", "p1", "a1"]


def test_ops_list_queued_jobs_in_run_order_and_count_them_all(client):
    _enqueue_mix()
    page = ops.list_jobs("default", "queued", limit=3)
    seen = [j.args[1] for j in page.jobs]
    while page.cursor is not None:
        page = ops.list_jobs("default", "queued", limit=3, cursor=page.cursor)
        seen += [j.args[1] for j in page.jobs]
    assert seen == RUN_ORDER
    assert ops.queue("default").size == 8
    info = ops.get_job("default", ops.list_jobs("default", "queued", limit=1).jobs[0].id)
    assert info is not None and info.priority == 5 and info.state == "queued"


@cluster_skip("it reads CLIENT LIST of one server to see the worker blocked")
def test_an_idle_worker_wakes_at_once_for_a_prioritized_job(client, run_worker, monkeypatch):
    # a long block: without the wake-up token the job would wait for it to time out
    monkeypatch.setattr(process, "BLOCK_TIMEOUT", 3.0)
    run_worker(concurrency=1, burst=False)
    wait_for(
        lambda: any(c.get("cmd") == "blmove" for c in client.client_list()),
        message="the worker blocked on the empty queue",
    )
    jobs.note.options(priority=3).enqueue("wake", "prioritized")
    wait_for(lambda: client.lrange("test:wake", 0, -1) == [b"prioritized"], timeout=2.0)
    assert client.llen(get_keys().queue("default").queued) == 0  # the token was dropped


def test_the_wake_token_is_no_job(client, run_worker):
    jobs.note.options(priority=2).enqueue("token", "only")
    qk = get_keys().queue("default")
    assert client.lrange(qk.queued, 0, -1) == [WAKE_TOKEN.encode()]
    assert ops.queue("default").size == 1
    assert [j.args[1] for j in ops.list_jobs("default", "queued").jobs] == ["only"]
    run_worker()
    assert client.lrange("test:token", 0, -1) == [b"only"]
    assert client.llen(qk.queued) == 0 and client.hlen(qk.jobs) == 0


def test_a_due_scheduled_job_goes_to_its_priority(client):
    plain = jobs.note.enqueue_in(3600, "sched", "plain")
    high = jobs.note.options(priority=4).enqueue_in(3600, "sched", "high")
    qk = get_keys().queue("default")
    client.zadd(qk.scheduled, {plain.id: 0, high.id: 0})  # both due now
    asyncio.run(_promote(qk))
    assert client.lrange(qk.queued, 0, -1) == [plain.id.encode()]
    assert client.zscore(qk.prioritized, high.id) == -4


async def _promote(qk) -> None:
    from steep.connection import make_async_client

    redis = make_async_client()
    try:
        await promote_due(redis, [qk])
    finally:
        await redis.aclose()


def test_a_returned_job_goes_back_to_its_priority(client):
    handle = jobs.note.options(priority=-2).enqueue("ret", "x")
    qk = get_keys().queue("default")
    client.zrem(qk.prioritized, handle.id)
    client.lpush(qk.inflight("dead-worker"), handle.id)  # as a claim leaves it
    client.hset(qk.state, handle.id, "running dead-worker 1")
    keys = [qk.inflight("dead-worker"), qk.queued, qk.state, qk.jobs, qk.prioritized]
    assert SCRIPTS.requeue(client, keys) == 1
    assert client.zscore(qk.prioritized, handle.id) == 2
    assert client.hget(qk.state, handle.id) is None


def test_operators_delete_move_and_clear_prioritized_jobs(client):
    a = jobs.note.options(priority=1).enqueue("ops", "a")
    b = jobs.note.options(priority=1).enqueue("ops", "b")
    jobs.note.options(priority=-1).enqueue("ops", "c")
    assert ops.delete_jobs("default", [a.id]) == 1
    moved = ops.move_job("default", b.id, "other")
    assert moved.queue == "other" and moved.priority == 1 and moved.state == "queued"
    assert client.zscore(get_keys().queue("other").prioritized, b.id) == -1
    assert ops.clear("default") >= 1
    assert ops.queue("default").size == 0
    assert client.hlen(get_keys().queue("default").jobs) == 0


def test_unique_jobs_keep_their_priority(client):
    first = jobs.note.options(priority=7, unique=True).enqueue("u", "x")
    again = jobs.note.options(priority=7, unique=True).enqueue("u", "x")
    assert again.duplicate and again.id == first.id
    assert client.zscore(get_keys().queue("default").prioritized, first.id) == -7


def test_enqueue_many_with_a_priority(client, run_worker):
    jobs.note.enqueue("many", "plain")
    jobs.note.options(priority=1).enqueue_many([("many", "m1"), ("many", "m2")])
    run_worker(concurrency=1)
    assert client.lrange("test:many", 0, -1) == [b"m1", b"m2", b"plain"]


def test_priority_must_be_a_small_int():
    with pytest.raises(ValueError, match="priority must be between -100 and 100"):
        jobs.note.options(priority=1000)
    with pytest.raises(TypeError, match="priority must be an int"):
        jobs.note.options(priority=1.5)


def test_the_documented_example_runs(client, server):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "features" / "priority_jobs.py")],
        env={**os.environ, "STEEP_REDIS_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "rendered checkout",
        "rendered cart",
        "rendered archive 1",
        "rendered archive 2",
        "rendered sitemap",
    ]
