"""The lean lane under single enqueue: same jobs as the regular path, and every kind of
trouble (no script on the server, a broken connection, a restarted server, an error
reply, a fork, many threads) ends with each job enqueued exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time

import pytest
import redis
import redis.asyncio

from steep import lane
from steep.connection import Script, get_client, get_keys, make_async_client
from steep.job import decode_envelope
from tests import jobs
from tests.conftest import cluster_skip, wait_for

# a cluster's lanes (one per primary, redirections handed to redis-py) are proven by
# tests/test_failover.py and the cluster run of the whole suite
pytestmark = cluster_skip("these look inside the lanes and CLIENT LIST of one server")


def queued_ids(client, queue: str = "default") -> list[str]:
    return [raw.decode() for raw in client.lrange(get_keys().queue(queue).queued, 0, -1)]


def current_lanes() -> lane.Lanes:
    lanes = lane._lanes_for(get_client())
    assert lanes is not None, "the lane is not in use (hiredis missing?)"
    return lanes


def test_enqueue_goes_through_a_lane_and_reuses_it(client):
    first = jobs.add.enqueue(1, 2)
    lanes = current_lanes()
    assert len(lanes.idle) == 1, "the first enqueue should leave one idle lane"
    opened = lanes.idle[0]
    second = jobs.add.enqueue(3, 4)
    assert lanes.idle == [opened], "the second enqueue should reuse the same lane"
    assert queued_ids(client) == [second.id, first.id]
    raw = client.hget(get_keys().queue("default").jobs, second.id)
    assert decode_envelope(raw).args == [3, 4]


def test_a_server_without_the_script_loads_it_and_adds_the_job_once(client):
    jobs.add.enqueue(0, 0)
    client.script_flush()
    handle = jobs.add.enqueue(1, 1)
    assert queued_ids(client).count(handle.id) == 1
    # and the lane carries the next one again
    after = jobs.add.enqueue(2, 2)
    assert queued_ids(client)[0] == after.id
    assert len(current_lanes().idle) == 1


def test_a_connection_killed_by_the_server_is_replaced(client):
    jobs.add.enqueue(0, 0)
    lanes = current_lanes()
    name = client.execute_command("CLIENT", "LIST")
    # kill every connection but the test's own: the idle lane's socket is now dead
    own = client.client_id()
    for line in name.decode().splitlines() if isinstance(name, bytes) else name.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if int(fields["id"]) != own:
            client.client_kill_filter(_id=fields["id"])
    dead = lanes.idle[0]
    handle = jobs.add.enqueue(5, 5)
    assert queued_ids(client).count(handle.id) == 1
    assert dead not in lanes.idle, "a lane that failed must never be reused"


def test_server_restart_loses_no_enqueue(client, server):
    if not server.restartable:
        pytest.skip("the server is external")
    before = jobs.add.enqueue(1, 1)
    server.restart(down_for=0.3)
    after = jobs.add.enqueue(2, 2)
    ids = queued_ids(client)
    assert after.id in ids
    # the append-only file brought back the job enqueued before the restart
    assert before.id in ids


def test_an_error_reply_raises_the_regular_redis_error(client):
    qk = get_keys().queue("default")
    client.set(qk.jobs, "not a hash")  # the script's HSETNX now hits a wrong type
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        jobs.add.enqueue(1, 1)
    client.delete(qk.jobs)
    handle = jobs.add.enqueue(2, 2)
    assert queued_ids(client) == [handle.id]


def test_threads_share_lanes_without_crossing_replies(client):
    per_thread, threads = 200, 8
    made: list[list[str]] = [[] for _ in range(threads)]

    def push(k: int) -> None:
        for i in range(per_thread):
            made[k].append(jobs.record.enqueue(f"t{k}", i).id)

    workers = [threading.Thread(target=push, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    ids = queued_ids(client)
    assert len(ids) == per_thread * threads == len(set(ids))
    assert set(ids) == {i for ids_ in made for i in ids_}
    assert 1 <= len(current_lanes().idle) <= lane.MAX_IDLE


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_lane(client):
    parent_job = jobs.add.enqueue(1, 1)
    parent_lane = current_lanes().idle[0]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: enqueue, report the id, exit without cleanup
        try:
            child_job = jobs.add.enqueue(2, 2)
            os.write(write, child_job.id.encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    # the parent's lane still works after the child exited
    again = jobs.add.enqueue(3, 3)
    assert current_lanes().idle == [parent_lane]
    wait_for(lambda: child_id in queued_ids(client), message="the child's job")
    assert sorted(queued_ids(client)) == sorted([parent_job.id, child_id, again.id])


# -- the worker's async lane ---------------------------------------------------------------


def echo_script() -> Script:
    # a script no test has loaded yet: the first call meets NOSCRIPT
    return Script(f"echo-{os.getpid()}-{time.time_ns()}", "return ARGV[1]")


def run_async(coro_fn):
    """Run coro_fn(lane, client) on a fresh loop with a fresh client and lane."""

    async def main():
        client = make_async_client()
        lane_ = lane.AsyncLane(client)
        try:
            return await coro_fn(lane_, client)
        finally:
            await lane_.aclose()
            await client.aclose()

    return asyncio.run(main())


def script_loads(client) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_script|load", {}).get("calls", 0))


def test_async_lane_pipelines_concurrent_calls_in_order(client):
    script = echo_script()
    loads_before = script_loads(client)

    async def go(lane_, _):
        replies = await asyncio.gather(*(lane_.run(script, [], [f"r{i}"]) for i in range(300)))
        return replies, lane_._conn is not None

    replies, used_lane = run_async(go)
    assert replies == [f"r{i}".encode() for i in range(300)]
    assert used_lane, "the calls should have gone through the lane's own connection"
    # all 300 met NOSCRIPT together; one SCRIPT LOAD served them all
    assert script_loads(client) - loads_before == 1


def test_async_lane_raises_the_regular_error_for_an_error_reply(client):
    failing = Script(f"boom-{time.time_ns()}", "return redis.error_reply('BOOM no way')")

    async def go(lane_, _):
        with pytest.raises(redis.ResponseError, match="no way"):
            await lane_.run(failing, [], [])
        # the lane is still in step: the next call gets its own reply
        return await lane_.run(echo_script(), [], ["after"])

    assert run_async(go) == b"after"


def test_async_lane_reconnects_after_its_connection_is_killed(client):
    script = echo_script()

    async def go(lane_, aclient):
        assert await lane_.run(script, [], ["one"]) == b"one"
        await aclient.client_kill_filter(_type="normal", skipme=True)
        deadline = time.monotonic() + 5
        while lane_._writer is not None:  # the reader task sees the connection end
            assert time.monotonic() < deadline, "the lane never noticed its connection died"
            await asyncio.sleep(0.01)
        return await lane_.run(script, [], ["two"])

    assert run_async(go) == b"two"


def test_async_lane_call_whose_reply_is_lost_raises_connection_error(tmp_path):
    """A private server is frozen (SIGSTOP) with a call in flight, then killed: the call
    must fail with a ConnectionError (retryable by the worker), never hang or get
    another call's reply."""
    import signal

    from steep import server as embedded
    from steep.settings import Settings

    private = Settings(data_dir=tmp_path / "lost", redis_url=None)
    socket_path = embedded.ensure_server(private)
    pid = int(embedded.server_paths(private).pid.read_text())
    script = echo_script()

    async def go():
        aclient = redis.asyncio.Redis(unix_socket_path=socket_path)
        lane_ = lane.AsyncLane(aclient)
        try:
            assert await lane_.run(script, [], ["warm"]) == b"warm"
            os.kill(pid, signal.SIGSTOP)
            call = asyncio.ensure_future(lane_.run(script, [], ["lost"]))
            await asyncio.sleep(0.1)
            assert not call.done(), "the frozen server cannot have answered"
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(call, 10)
        finally:
            await lane_.aclose()
            await aclient.aclose()

    try:
        asyncio.run(go())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        embedded.stop_server(private)


# -- an idle worker's blocking fetch ------------------------------------------------------------


def blocked_ids(client) -> set[int]:
    """The connections the server holds in a BLMOVE (an idle worker waiting for a job)."""
    return {int(c["id"]) for c in client.client_list() if c.get("cmd") == "blmove"}


def waits_on_a_lane(worker, client) -> bool:
    if worker.slots is not None and worker.slots.listen_queue is not None:
        # slot threads (STEEP_WORKER_MODE=threads): a slot waits on its own connection
        slot_ids = {t.client_id for t in worker.slots.threads}
        return bool(blocked_ids(client)) and blocked_ids(client) <= slot_ids
    found = worker._block_lanes.get("default")
    return found is not None and found._conn is not None and found is not worker.lane


def test_an_idle_worker_waits_on_its_own_lane_and_starts_a_lone_job(client, run_worker):
    worker = run_worker(burst=False)
    wait_for(lambda: blocked_ids(client), message="the worker to block")
    assert waits_on_a_lane(worker, client), "the blocking fetch should run on a lane of its own"
    handle = jobs.add.enqueue(2, 3)
    assert handle.result(timeout=5) == 5


def test_an_idle_worker_survives_a_script_flush_while_it_waits(client, run_worker):
    run_worker(burst=False)
    wait_for(lambda: blocked_ids(client), message="the worker to block")
    # the claim sent behind the blocked BLMOVE now meets NOSCRIPT when a job arrives
    client.script_flush()
    first = jobs.add.enqueue(1, 2)
    assert first.result(timeout=5) == 3
    wait_for(lambda: blocked_ids(client), message="the worker to block again")
    second = jobs.add.enqueue(2, 2)
    assert second.result(timeout=5) == 4


def test_an_idle_worker_whose_waiting_connection_is_killed_waits_again(client, run_worker):
    run_worker(burst=False)
    wait_for(lambda: blocked_ids(client), message="the worker to block")
    killed = blocked_ids(client)
    for client_id in killed:
        client.client_kill_filter(_id=client_id)
    # a new connection blocks in its place; a job sent then runs once
    wait_for(lambda: blocked_ids(client) - killed, timeout=10, message="a new blocking fetch")
    jobs.record.enqueue("killed-wait", 1)
    wait_for(lambda: client.scard("test:seen:killed-wait") == 1, message="the job to run")
    assert queued_ids(client) == []
