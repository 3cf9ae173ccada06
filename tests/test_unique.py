"""Unique jobs (steep.features.unique): one job per name and arguments, however it is enqueued."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from steep import ops
from steep.connection import get_keys
from steep.job import decode_envelope
from tests import jobs
from tests.conftest import ROOT, wait_for


def _lock(client, handle) -> str:
    qk = get_keys().queue(handle.queue)
    env = decode_envelope(client.hget(qk.jobs, handle.id))
    assert env.unique_key is not None
    return qk.unique(env.unique_key)


def _job_count(client) -> int:
    return client.hlen(get_keys().queue("default").jobs)


def test_a_duplicate_returns_the_existing_job(client):
    first = jobs.unique_gated.enqueue("a")
    second = jobs.unique_gated.enqueue("a")
    assert not first.duplicate
    assert second.duplicate and second.id == first.id and second.name == first.name
    assert _job_count(client) == 1
    assert client.llen(get_keys().queue("default").queued) == 1
    assert client.get(_lock(client, first)) == first.id.encode()


def test_different_arguments_make_different_jobs(client):
    a = jobs.unique_gated.enqueue("a")
    b = jobs.unique_gated.enqueue("b")
    kw = jobs.unique_gated.enqueue(tag="a")  # the same call spelled differently is another key
    assert len({a.id, b.id, kw.id}) == 3
    assert not (a.duplicate or b.duplicate or kw.duplicate)
    assert _job_count(client) == 3


def test_plain_jobs_are_untouched(client):
    a, b = jobs.add.enqueue(1, 2), jobs.add.enqueue(1, 2)
    assert a.id != b.id and not a.duplicate and not b.duplicate
    assert not client.keys("*:unique:*")


def test_unique_key_function_decides_what_is_equal(client):
    a = jobs.sync_account.enqueue(7, reason="signup")
    b = jobs.sync_account.enqueue(7, reason="payment")  # other reason, same account
    c = jobs.sync_account.enqueue(8, reason="signup")
    assert b.duplicate and b.id == a.id
    assert not c.duplicate and c.id != a.id


def test_options_make_any_job_unique(client):
    a = jobs.add.options(unique=True).enqueue(1, 1)
    b = jobs.add.options(unique_for=60).enqueue(1, 1)
    assert b.duplicate and b.id == a.id


def test_enqueue_many_checks_each_job(client):
    existing = jobs.unique_gated.enqueue("x")
    handles = jobs.unique_gated.enqueue_many([("x",), ("y",), ("y",), ("z",)])
    assert [h.duplicate for h in handles] == [True, False, True, False]
    assert handles[0].id == existing.id and handles[1].id == handles[2].id
    assert _job_count(client) == 3


def test_async_enqueue_is_unique_too(client):
    async def main():
        from steep.connection import close_async_client

        try:
            a = await jobs.unique_gated.aenqueue("a")
            b = await jobs.unique_gated.aenqueue("a")
            many = await jobs.unique_gated.aenqueue_many([("a",), ("b",)])
            return a, b, many
        finally:
            await close_async_client()

    a, b, many = asyncio.run(main())
    assert b.duplicate and b.id == a.id
    assert many[0].duplicate and not many[1].duplicate


def test_the_lock_always_expires(client):
    plain = jobs.unique_gated.enqueue("a")
    assert 0 < client.pttl(_lock(client, plain)) <= 24 * 3600 * 1000
    short = jobs.add.options(unique_for=30).enqueue(2, 2)
    assert 0 < client.pttl(_lock(client, short)) <= 30_000
    # a job scheduled for later keeps its lock at least until it runs, plus the cap
    later = jobs.add.options(unique_for=30).enqueue_in(3600, 3, 3)
    assert 3600_000 < client.pttl(_lock(client, later)) <= 3630_000


def test_released_when_it_succeeds(client, run_worker):
    handle = jobs.add.options(unique=True).enqueue(4, 4)
    lock = _lock(client, handle)
    run_worker()
    assert handle.result(timeout=1) == 8
    wait_for(lambda: not client.exists(lock), message="the lock released after success")
    again = jobs.add.options(unique=True).enqueue(4, 4)
    assert not again.duplicate and again.id != handle.id


def test_until_finished_holds_while_running_until_the_retry_succeeds(client, run_worker):
    handle = jobs.unique_fails_once.enqueue("r")
    lock = _lock(client, handle)
    run_worker(burst=False)
    wait_for(lambda: client.lrange("test:r", 0, -1) == [b"attempt 1"], message="attempt 1")
    running = jobs.unique_fails_once.enqueue("r")
    assert running.duplicate and running.id == handle.id
    client.rpush("test:gate:r", "go")  # the first attempt fails: a retry is scheduled
    wait_for(lambda: client.lrange("test:r", 0, -1) == [b"attempt 1", b"attempt 2"])
    wait_for(lambda: not client.exists(lock), message="the lock released after the retry")
    assert int(client.hget(get_keys().queue("default").stats, "processed")) == 1


def test_while_waiting_to_retry_a_duplicate_is_still_refused(client, run_worker):
    handle = jobs.unique_fails_once.options(backoff=60).enqueue("w")
    run_worker(burst=False)
    wait_for(lambda: client.lrange("test:w", 0, -1) == [b"attempt 1"], message="attempt 1")
    client.rpush("test:gate:w", "go")
    qk = get_keys().queue("default")
    wait_for(lambda: client.hget(qk.state, handle.id) == b"retrying", message="waiting to retry")
    again = jobs.unique_fails_once.enqueue("w")
    assert again.duplicate and again.id == handle.id


def test_until_started_allows_a_new_job_once_it_runs(client, run_worker):
    handle = jobs.unique_started_gated.enqueue("s")
    assert jobs.unique_started_gated.enqueue("s").duplicate  # still waiting: refused
    run_worker(burst=False)
    wait_for(lambda: client.lrange("test:s", 0, -1) == [b"started"], message="the first run")
    second = jobs.unique_started_gated.enqueue("s")
    assert not second.duplicate and second.id != handle.id
    client.rpush("test:gate:s", "go", "go")
    assert handle.result(timeout=10) == "s" and second.result(timeout=10) == "s"


def test_until_finished_refuses_while_running(client, run_worker):
    handle = jobs.unique_gated.enqueue("f")
    lock = _lock(client, handle)
    run_worker(burst=False)
    wait_for(lambda: client.lrange("test:f", 0, -1) == [b"started"], message="the first run")
    second = jobs.unique_gated.enqueue("f")
    assert second.duplicate and second.id == handle.id
    client.rpush("test:gate:f", "go")
    assert handle.result(timeout=10) == "f"
    wait_for(lambda: not client.exists(lock), message="the lock released after success")
    third = jobs.unique_gated.enqueue("f")
    assert not third.duplicate and third.id != handle.id
    client.rpush("test:gate:f", "go")
    assert third.result(timeout=10) == "f"


def test_released_when_it_dies(client, run_worker):
    handle = jobs.unique_fails.enqueue("d")
    lock = _lock(client, handle)
    run_worker()
    qk = get_keys().queue("default")
    assert client.zscore(qk.dead, handle.id) is not None
    wait_for(lambda: not client.exists(lock), message="the lock released at death")
    again = jobs.unique_fails.enqueue("d")
    assert not again.duplicate and again.id != handle.id


def test_released_when_an_operator_deletes_it(client):
    handle = jobs.unique_gated.enqueue("del")
    lock = _lock(client, handle)
    assert ops.delete_jobs("default", [handle.id]) == 1
    assert not client.exists(lock)
    assert not jobs.unique_gated.enqueue("del").duplicate


def test_delete_refused_for_a_running_job_keeps_its_lock(client):
    handle = jobs.unique_gated.enqueue("run")
    lock = _lock(client, handle)
    qk = get_keys().queue("default")
    client.hset(qk.state, handle.id, "running some-worker 1")  # as a claim leaves it
    assert ops.delete_jobs("default", [handle.id]) == 0
    assert client.get(lock) == handle.id.encode()


def test_a_stale_lock_does_not_block(client):
    """A worker killed between settling a job and releasing its lock leaves the lock
    pointing at a job that no longer exists: the next enqueue takes it over."""
    handle = jobs.unique_gated.enqueue("crash")
    lock = _lock(client, handle)
    qk = get_keys().queue("default")
    client.lrem(qk.queued, 1, handle.id)
    client.hdel(qk.jobs, handle.id)  # what ack.lua does; the release never came
    assert client.get(lock) == handle.id.encode()
    again = jobs.unique_gated.enqueue("crash")
    assert not again.duplicate and again.id != handle.id
    assert client.get(lock) == again.id.encode()


def test_a_dead_holder_does_not_block(client):
    handle = jobs.unique_gated.enqueue("buried")
    qk = get_keys().queue("default")
    client.lrem(qk.queued, 1, handle.id)
    client.hset(qk.state, handle.id, "dead")  # buried, and the release was lost
    assert not jobs.unique_gated.enqueue("buried").duplicate


def test_bad_options_are_refused_clearly():
    with pytest.raises(ValueError, match="unique_until must be 'finished' or 'started'"):
        jobs.add.options(unique=True, unique_until="done")
    with pytest.raises(ValueError, match="unique_for must be > 0"):
        jobs.add.options(unique_for=0)


def test_unique_key_must_return_a_string(client):
    with pytest.raises(TypeError, match=r"unique_key of tests\.jobs\.add must return a str"):
        jobs.add.options(unique_key=lambda a, b: a + b).enqueue(1, 2)
    assert _job_count(client) == 0


_RACER = """
import json, sys
from steep.connection import get_client
from tests import jobs
get_client().blpop(["test:race:go"], timeout=30)
handle = jobs.unique_gated.enqueue("race")
print(json.dumps([handle.id, handle.duplicate]))
"""


def test_racing_enqueues_from_many_processes_add_one_job(client, server):
    env = {**os.environ, "STEEP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    try:
        # release them together once every one is waiting at the gate
        wait_for(
            lambda: sum(1 for c in client.client_list() if c.get("cmd") == "blpop") == len(racers),
            timeout=30,
            message="every racer at the gate",
        )
        client.rpush("test:race:go", *["go"] * len(racers))
        results = [json.loads(r.communicate(timeout=30)[0]) for r in racers]
    finally:
        for r in racers:
            if r.poll() is None:
                r.kill()
    assert all(r.returncode == 0 for r in racers)
    ids = {job_id for job_id, _ in results}
    assert len(ids) == 1
    assert sorted(dup for _, dup in results) == [False] + [True] * (len(racers) - 1)
    assert _job_count(client) == 1


def test_the_documented_example_runs(client, server):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "features" / "unique_jobs.py")],
        env={**os.environ, "STEEP_REDIS_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "second is a duplicate: True, same job: True",
        "another feed is a new job: True",
        "same account, other reason: duplicate=True",
        "syncing account 1 (signup)",
        "feed 7 refreshed",
        "after it ran: duplicate=False",
    ]


def test_visible_in_ops_and_on_the_dashboard(client):
    from starlette.testclient import TestClient

    from steep.web import create_app

    handle = jobs.unique_started_gated.options(expires_in=600).enqueue("seen")
    info = ops.get_job("default", handle.id)
    assert info is not None and info.unique_until == "started"
    assert info.unique_key and len(info.unique_key) == 32 and info.expires_at
    assert "unique_key" not in info.extra
    page = TestClient(create_app(), client=("127.0.0.1", 50000)).get(f"/jobs/default/{handle.id}")
    assert info.unique_key in page.text and "until started" in page.text
    assert "<dt>expires</dt>" in page.text


def test_a_worker_killed_mid_run_keeps_the_lock_with_the_job(client, worker_cli):
    """SIGKILL while the job runs: the job goes back to its queue still holding its lock
    (an equal enqueue meanwhile is a duplicate), runs again, and then releases it."""
    cli = worker_cli("worker", "tests.jobs", "-q", "default", "-p", "1", "-c", "2")
    handle = jobs.unique_gated.enqueue("kill")
    lock = _lock(client, handle)
    wait_for(lambda: client.llen("test:kill") == 1, message="the first run")
    [child] = cli.children()
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: client.llen("test:kill") == 2, timeout=20, message="the run after the kill")
    again = jobs.unique_gated.enqueue("kill")
    assert again.duplicate and again.id == handle.id
    client.rpush("test:gate:kill", "go")
    assert handle.result(timeout=10) == "kill"
    wait_for(lambda: not client.exists(lock), message="the lock released after the rerun")
    assert not jobs.unique_gated.enqueue("kill").duplicate
    client.rpush("test:gate:kill", "go")
