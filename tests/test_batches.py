"""Batches (steep.features.batches): progress, callbacks exactly once, failures,
retries from the dead set, nested batches, and several worker processes."""

from __future__ import annotations

import os
import signal

import pytest

from steep import Batch, batch, ops
from steep.connection import get_keys
from steep.features.batches.ids import derived_id
from steep.features.batches.records import BatchError, get_status, record
from tests import batch_jobs as bj
from tests.conftest import wait_for


def state_is(b: Batch, *states: str, timeout: float = 10.0):
    return wait_for(
        lambda: (s := b.status()) is not None and s.state in states and not s.outbox and s,
        timeout=timeout,
        message=f"batch {b.id} to be {states}",
    )


def count(client, key: str) -> int:
    return int(client.get(f"test:{key}") or 0)


def test_progress_then_both_callbacks_once(client, run_worker):
    with batch(
        description="twenty",
        meta={"owner": "ops"},
        on_complete=bj.callback.s("complete"),
        on_success=bj.callback.s("success"),
    ) as b:
        handles = [b.add(bj.work.s("t", i)) for i in range(20)]
        assert b.status().state == "open"  # nothing flushed yet, but the record exists
    before = b.status()
    assert (before.state, before.total, before.pending, before.succeeded) == ("running", 20, 20, 0)
    assert {h.id for h in handles} == {
        e.decode() for e in client.lrange("steep:{default}:queued", 0, -1)
    }

    run_worker(burst=False)
    wait_for(
        lambda: count(client, "cb:complete") and count(client, "cb:success"), message="callbacks"
    )
    done = state_is(b, "succeeded")
    assert (done.total, done.pending, done.succeeded, done.failed) == (20, 0, 20, 0)
    assert done.callbacks_done == ["complete", "success"] or wait_for(
        lambda: b.status().callbacks_done == ["complete", "success"], message="callbacks marked"
    )
    (given,) = bj.notes(client, "cbs:complete")
    assert given["id"] == b.id and given["total"] == 20 and given["succeeded"] == 20
    assert given["description"] == "twenty" and given["meta"] == {"owner": "ops"}
    assert count(client, "cb:complete") == count(client, "cb:success") == 1
    # bookkeeping expires: a completed batch keeps its record for the ttl only
    ttl = client.ttl(get_keys().batch(b.id).info)
    assert 0 < ttl <= 7 * 86400


def test_a_retried_member_counts_once_as_succeeded(client, run_worker):
    with batch(on_success=bj.callback.s("ok")) as b:
        b.add(bj.flaky.s("f", 2))
        b.add(bj.work.s("t", 1))
    run_worker(burst=False)
    wait_for(lambda: count(client, "cb:ok") == 1, message="on_success")
    assert bj.notes(client, "attempts:f") == [1, 2, 3]
    s = state_is(b, "succeeded")
    assert (s.total, s.succeeded, s.failed) == (2, 2, 0)


def test_a_dead_member_completes_without_success_until_retried(client, run_worker):
    client.set("test:flag", 1)
    with batch(on_complete=bj.callback.s("complete"), on_success=bj.callback.s("success")) as b:
        dead = b.add(bj.fails_while_flagged.s("flag"))
        for i in range(3):
            b.add(bj.work.s("t", i))
    run_worker(burst=False)
    wait_for(lambda: count(client, "cb:complete") == 1, message="on_complete")
    s = state_is(b, "failed")
    assert (s.total, s.pending, s.succeeded, s.failed, s.failed_ids) == (4, 0, 3, 1, [dead.id])
    (given,) = bj.notes(client, "cbs:complete")
    assert given["failed"] == 1 and given["failed_ids"] == [dead.id]
    # on_success is decided in the same script call as on_complete: it was not decided
    assert s.success_at is None and not client.hexists(
        "steep:{default}:jobs", derived_id(b.id, "success")
    )
    assert count(client, "cb:success") == 0

    # an operator retries the dead member from the dead set; now it succeeds
    client.delete("test:flag")
    assert ops.retry_jobs("default", [dead.id]) == 1
    wait_for(lambda: count(client, "cb:success") == 1, message="on_success after the retry")
    s = state_is(b, "succeeded")
    assert (s.succeeded, s.failed, s.failed_ids) == (4, 0, [])
    assert count(client, "cb:complete") == 1  # on_complete fired once, not again


def test_a_member_recorded_twice_counts_once_and_callbacks_are_not_duplicated(client, run_worker):
    """The crash window: a worker records a member, dies before its ack, the job runs
    again and is recorded again (here: the record script called twice)."""
    with batch(on_complete=bj.callback.s("complete")) as b:
        one = b.add(bj.work.s("t", 1))
        two = b.add(bj.work.s("t", 2))
    assert record(client, b.id, [(one.id, "s", None, None)]) == ""
    assert record(client, b.id, [(one.id, "s", None, None)]) == ""
    assert b.status().succeeded == 1 and b.status().pending == 1
    outbox = record(client, b.id, [(two.id, "s", None, None)])
    assert outbox and record(client, b.id, [(two.id, "s", None, None)]) == outbox
    from steep.features.batches.delivery import deliver

    deliver(client, b.id, outbox)
    deliver(client, b.id, outbox)  # the re-run's delivery: same callback id, not added again
    s = b.status()
    assert (s.succeeded, s.pending, s.outbox) == (2, 0, [])
    cb_id = derived_id(b.id, "complete")
    assert client.lrange("steep:{default}:queued", 0, -1).count(cb_id.encode()) == 1
    client.delete("steep:{default}:queued")  # the members themselves were recorded by hand
    client.lpush("steep:{default}:queued", cb_id)
    run_worker()
    assert count(client, "cb:complete") == 1
    # a callback enqueued again after it ran and settled is discarded, not run twice
    from steep.features.batches.delivery import _fire

    _fire(client, b.id, "complete")
    run_worker()
    assert count(client, "cb:complete") == 1
    assert int(client.hget("steep:{default}:stats", "discarded")) == 1
    # a dead outcome after a success changes nothing
    record(client, b.id, [(one.id, "f", None, None)])
    assert b.status().failed == 0


def test_members_added_from_inside_a_member(client, run_worker):
    with batch(on_success=bj.callback.s("ok")) as b:
        b.add(bj.add_more.s("t", 3))
    run_worker(burst=False)
    wait_for(lambda: count(client, "cb:ok") == 1, message="on_success")
    (given,) = bj.notes(client, "cbs:ok")
    assert (given["total"], given["succeeded"]) == (4, 4)
    assert count(client, "runs:t") == 3


def test_nested_batch_completes_the_parent_after_the_child(client, run_worker):
    with batch(on_complete=bj.callback.s("parent")) as parent:
        spawner = parent.add(bj.spawn_child.s("c", 5, 0.05))
    run_worker(burst=False, concurrency=2)
    wait_for(lambda: count(client, "cb:parent") == 1, timeout=15, message="parent callback")
    p = state_is(parent, "succeeded")
    assert (p.total, p.succeeded) == (2, 2)  # the spawning job and the child batch
    (child_member,) = [
        k.decode()
        for k in client.hkeys(get_keys().batch(parent.id).members)
        if k.decode() != spawner.id
    ]
    child = get_status(child_member)
    assert child is not None and child.parent == parent.id and child.total == 5
    assert child.complete_at <= p.complete_at
    assert count(client, "runs:child-c") == 5 and count(client, "cb:child-c") == 1
    (given,) = bj.notes(client, "cbs:parent")
    assert given["total"] == 2


def test_an_empty_batch_completes_when_closed(client, run_worker):
    with batch(on_success=bj.callback.s("empty")) as b:
        pass
    assert b.status().state == "succeeded"
    run_worker()
    assert count(client, "cb:empty") == 1


def test_a_block_that_raises_enqueues_nothing(client):
    with pytest.raises(RuntimeError), batch() as b:
        b.add(bj.work.s("t", 1))
        raise RuntimeError("no")
    assert b.status() is None and ops.queue("default").size == 0
    with pytest.raises(BatchError, match="already closed"), b:
        pass
    with pytest.raises(TypeError, match="signature"):
        batch(on_complete=bj.callback)  # type: ignore[arg-type]


def test_callbacks_fire_exactly_once_with_three_worker_processes(client, worker_cli):
    with batch(on_complete=bj.callback.s("complete"), on_success=bj.callback.s("success")) as b:
        for i in range(200):
            b.add(bj.work.s("p", i))
    cli = worker_cli("worker", "tests.batch_jobs", "-p", "3", "-c", "10")
    wait_for(lambda: count(client, "cb:success") == 1, timeout=60, message="on_success")
    wait_for(lambda: count(client, "cb:complete") == 1, timeout=10, message="on_complete")
    s = state_is(b, "succeeded")
    assert (s.total, s.succeeded, s.failed) == (200, 200, 0)
    assert count(client, "runs:p") == 200
    cli.signal(signal.SIGTERM)
    assert cli.wait() == 0
    assert count(client, "cb:complete") == count(client, "cb:success") == 1


def test_a_worker_killed_mid_batch_loses_nothing_and_counts_once(client, worker_cli):
    with batch(on_complete=bj.callback.s("complete"), on_success=bj.callback.s("success")) as b:
        for i in range(120):
            b.add(bj.work.s("k", i, 0.05))
    cli = worker_cli("worker", "tests.batch_jobs", "-p", "3", "-c", "5")
    wait_for(lambda: count(client, "runs:k") >= 20, timeout=30, message="members running")
    victim = cli.children()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: count(client, "cb:success") == 1, timeout=60, message="on_success")
    s = state_is(b, "succeeded")
    assert (s.total, s.succeeded, s.failed, s.pending) == (120, 120, 0, 0)
    assert count(client, "runs:k") >= 120  # jobs the killed process held ran again
    cli.signal(signal.SIGTERM)
    assert cli.wait() == 0
    assert count(client, "cb:complete") == count(client, "cb:success") == 1


def test_ops_and_cli_show_progress(client, run_worker):
    import json

    from click.testing import CliRunner

    from steep.cli import main

    client.set("test:flag", 1)
    with batch(description="older") as first:
        first.add(bj.work.s("t", 0))
    with batch(description="mixed", on_complete=bj.callback.s("c")) as b:
        dead = b.add(bj.fails_while_flagged.s("flag"))
        b.add(bj.work.s("t", 1))
    listed = ops.batches()
    assert [x.id for x in listed] == [b.id, first.id]  # newest first
    assert (listed[0].state, listed[0].total, listed[0].pending) == ("running", 2, 2)

    run_worker(burst=False)
    state_is(b, "failed")
    assert [x.id for x in ops.batches(state="failed")] == [b.id]
    result = CliRunner().invoke(main, ["batches", "show", b.id, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stderr: the running worker may log meanwhile
    assert (data["state"], data["total"], data["succeeded"], data["failed"]) == ("failed", 2, 1, 1)
    assert data["failed_ids"] == [dead.id] and data["percent"] == 100.0
    result = CliRunner().invoke(main, ["batches", "--json"])
    assert [x["id"] for x in json.loads(result.stdout)["batches"]] == [b.id, first.id]
    result = CliRunner().invoke(main, ["batches", "show", b.id])
    assert result.exit_code == 0 and "mixed" in result.output and dead.id in result.output
    result = CliRunner().invoke(main, ["batches", "show", "nope"])
    assert result.exit_code != 0 and "no batch nope" in result.output
    # an expired batch drops out of the index
    client.delete(*get_keys().batch(first.id).all())
    assert [x.id for x in ops.batches()] == [b.id]
    assert client.zscore(get_keys().batches, first.id) is None


def test_dashboard_lists_batches_with_progress_and_links_members(client, monkeypatch):
    from starlette.testclient import TestClient

    from steep.web import create_app

    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    web = TestClient(create_app(), client=("127.0.0.1", 50000))
    with batch(description="<b>nightly</b>", on_success=bj.callback.s("x")) as b:
        member = b.add(bj.work.s("t", 1))
        b.add(bj.work.s("t", 2))
        dead = b.add(bj.work.s("t", 3))
        b.add(bj.work.s("t", 4))
    record(client, b.id, [(member.id, "s", None, None), (dead.id, "f", None, None)])
    page = web.get("/batches")
    assert page.status_code == 200
    assert f'href="/batches/{b.id}"' in page.text and "&lt;b&gt;nightly&lt;/b&gt;" in page.text
    assert 'aria-valuenow="2"' in page.text and 'style="width: 25.0%"' in page.text
    detail = web.get(f"/batches/{b.id}")
    assert detail.status_code == 200 and "2 of 4 done" in detail.text
    assert f'href="/jobs/default/{dead.id}"' in detail.text  # the dead member, linked
    assert "tests.batch_jobs.callback" in detail.text
    job_page = web.get(f"/jobs/default/{member.id}")
    assert f'href="/batches/{b.id}"' in job_page.text
    assert web.get("/api/batch/" + b.id).json()["failed_ids"] == [dead.id]
    assert web.get("/api/batch/nope").status_code == 404
    assert "No such batch" in web.get("/batches/nope").text
    assert web.get("/batches?state=failed").status_code == 200


def test_a_job_that_runs_again_makes_the_same_batch_and_enqueues_nothing_twice(client):
    from steep.context import JobContext, _current
    from steep.job import new_job_id

    job_id = new_job_id()

    def one_run() -> tuple[Batch, list[str]]:
        token = _current.set(JobContext(job_id, "maker", "default", 1, "w"))
        try:
            with batch(parent=None) as b:
                return b, [b.add(bj.work.s("t", i)).id for i in range(3)]
        finally:
            _current.reset(token)

    first, ids = one_run()
    # the first member ran and settled before the worker running `maker` died
    record(client, first.id, [(ids[0], "s", None, None)])
    client.hdel("steep:{default}:jobs", ids[0])
    client.lrem("steep:{default}:queued", 0, ids[0])
    again, ids_again = one_run()
    assert (again.id, ids_again) == (first.id, ids)
    s = again.status()
    assert (s.total, s.succeeded, s.pending) == (3, 1, 2)
    queued = [i.decode() for i in client.lrange("steep:{default}:queued", 0, -1)]
    assert sorted(queued) == sorted(ids[1:])


def test_a_chain_step_recorded_again_does_not_rerun_the_next_step(client, run_worker):
    from steep.features.batches.hook import settle_member
    from steep.features.batches.workflow import chain
    from steep.job import decode_envelope
    from steep.registry import lookup
    from steep.worker.executor import Outcome

    b = chain(bj.add_one.s(1), bj.step_note.s()).enqueue()
    (first_id,) = [i.decode() for i in client.lrange("steep:{default}:queued", 0, -1)]
    payload = client.hget("steep:{default}:jobs", first_id)
    run_worker(burst=False)
    state_is(b, "succeeded")
    assert bj.notes(client, "steps") == [[2]]
    # the first step's worker "died" before its ack: the step runs and is recorded again
    env = decode_envelope(payload)
    outcome = Outcome("default", first_id, payload, env, lookup(env.name), ok=True, value=2)
    settle_member(outcome)
    assert ops.queue("default").size == 0
    assert b.status().succeeded == 2 and bj.notes(client, "steps") == [[2]]


def test_a_failed_child_fails_the_parent_until_its_dead_member_succeeds(client, run_worker):
    client.set("test:flag", 1)
    with batch(on_complete=bj.callback.s("complete"), on_success=bj.callback.s("success")) as b:
        b.add(bj.spawn_flagged_child.s("flag"))
    run_worker(burst=False)
    wait_for(lambda: count(client, "cb:complete") == 1, message="the parent's on_complete")
    parent = state_is(b, "failed")
    (child_id,) = parent.failed_ids
    child = get_status(child_id)
    assert child is not None and (child.state, child.parent, child.failed) == ("failed", b.id, 1)
    client.delete("test:flag")
    # a member's death is counted in its batch before its own record is written (so a
    # crash between the two runs it again rather than losing the count): the callbacks can
    # run a moment before the member is in the dead set, where a retry finds it
    qk = get_keys().queue("default")
    wait_for(
        lambda: all(client.zscore(qk.dead, i) is not None for i in child.failed_ids),
        message="the dead member's record",
    )
    assert ops.retry_jobs("default", child.failed_ids) == len(child.failed_ids)
    wait_for(lambda: count(client, "cb:success") == 1, message="the parent's on_success")
    parent = state_is(b, "succeeded")
    assert (parent.succeeded, parent.failed) == (2, 0)
    assert get_status(child_id).state == "succeeded"
    assert count(client, "cb:complete") == 1
