"""Worker hooks (steep.hooks): the extension point features use around a run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from steep import JobFailed, hooks
from steep.connection import get_keys
from steep.job import decode_envelope, encode_envelope
from tests import jobs
from tests.conftest import wait_for

calls: list[tuple[str, str, str]] = []


class Recorder(hooks.Hook):
    """Concerns jobs whose meta names it; does what meta["verdict:<name>"] says."""

    def __init__(self, name: str) -> None:
        self.name = name

    def concerns(self, envelope, function) -> bool:
        return self.name in envelope.meta.get("hooks", [])

    async def before_run(self, redis, envelope, ctx):
        calls.append((self.name, "before", envelope.id))
        what = envelope.meta.get(f"verdict:{self.name}")
        if what == "defer" and not envelope.meta.get("deferred"):
            return hooks.Defer(60.0, "over the limit")
        if what == "discard":
            return hooks.Discard("Expired", "not started in time", counter="expired")
        return None

    async def after_run(self, redis, outcome):
        state = "verdict" if outcome.verdict else "ok" if outcome.ok else "failed"
        calls.append((self.name, f"after_run:{state}", outcome.job_id))

    async def after_settle(self, redis, outcome):
        calls.append((self.name, "after_settle", outcome.job_id))


@pytest.fixture
def recorders() -> Iterator[None]:
    calls.clear()
    saved = list(hooks._HOOKS)
    hooks.register(Recorder("a"))
    hooks.register(Recorder("b"))
    yield
    hooks._HOOKS[:] = saved


def _enqueue_with_meta(client, meta: dict) -> str:
    handle = jobs.add.enqueue(1, 2)
    qk = get_keys().queue("default")
    env = decode_envelope(client.hget(qk.jobs, handle.id))
    env.meta = meta
    client.hset(qk.jobs, handle.id, encode_envelope(env))
    return handle.id


def test_hooks_run_in_order_around_a_job(client, run_worker, recorders):
    job_id = _enqueue_with_meta(client, {"hooks": ["a", "b"]})
    plain = jobs.add.enqueue(2, 2)
    run_worker()
    assert plain.result(timeout=1) == 4
    mine = [c[:2] for c in calls if c[2] == job_id]
    assert mine == [
        ("a", "before"),
        ("b", "before"),
        ("a", "after_run:ok"),
        ("b", "after_run:ok"),
        ("a", "after_settle"),
        ("b", "after_settle"),
    ]
    assert not [c for c in calls if c[2] == plain.id]  # jobs they do not concern: untouched


def test_defer_puts_the_job_back_without_spending_an_attempt(client, run_worker, recorders):
    job_id = _enqueue_with_meta(client, {"hooks": ["a", "b"], "verdict:b": "defer"})
    run_worker(burst=False)
    qk = get_keys().queue("default")
    wait_for(lambda: client.hget(qk.state, job_id) == b"scheduled", message="deferral")
    due = client.zscore(qk.scheduled, job_id)
    assert due is not None
    env = decode_envelope(client.hget(qk.jobs, job_id))
    assert env.attempt == 0 and env.meta["deferred"] == 1
    assert client.hget(qk.stats, "failed") is None
    # a gave back what it took when b said "not now"; nobody saw a settlement
    assert [c[:2] for c in calls] == [("a", "before"), ("b", "before"), ("a", "after_run:verdict")]
    # due again, it runs (the hook lets a deferred job through)
    client.zadd(qk.scheduled, {job_id: 0})
    wait_for(lambda: client.hget(qk.stats, "processed") == b"1", message="the deferred job")
    assert client.hexists(qk.jobs, job_id) == 0


def test_discard_drops_the_job_and_counts_it(client, run_worker, recorders):
    handle = jobs.add.enqueue(5, 5)
    qk = get_keys().queue("default")
    env = decode_envelope(client.hget(qk.jobs, handle.id))
    env.meta = {"hooks": ["a"], "verdict:a": "discard"}
    client.hset(qk.jobs, handle.id, encode_envelope(env))
    run_worker()
    assert client.hexists(qk.jobs, handle.id) == 0
    assert int(client.hget(qk.stats, "expired")) == 1
    assert client.hget(qk.stats, "processed") is None
    # the waiting caller learns why
    with pytest.raises(JobFailed, match="not started in time"):
        handle.result(timeout=1)
    assert [c[:2] for c in calls] == [("a", "before"), ("a", "after_settle")]


class Broken(hooks.Hook):
    name = "broken"

    def concerns(self, envelope, function) -> bool:
        return "broken" in envelope.meta.get("hooks", [])

    async def before_run(self, redis, envelope, ctx):
        raise RuntimeError("cannot decide")


def test_a_failing_hook_defers_the_job_and_frees_the_slot(client, run_worker, recorders):
    hooks.register(Broken())
    job_id = _enqueue_with_meta(client, {"hooks": ["a", "broken"]})
    worker = run_worker(burst=False, concurrency=1)
    qk = get_keys().queue("default")
    wait_for(lambda: client.hget(qk.state, job_id) == b"scheduled", message="deferral")
    env = decode_envelope(client.hget(qk.jobs, job_id))
    assert env.attempt == 0 and env.meta["deferred"] == 1
    assert ("a", "after_run:verdict", job_id) in calls  # a gave back what it took
    # the only slot is free again: another job runs
    other = jobs.add.enqueue(3, 4)
    assert other.result(timeout=5) == 7
    # a slot thread (STEEP_WORKER_MODE=threads) frees its slot just after the ack's reply
    wait_for(lambda: not worker.running, message="the slot to be free")


def test_a_job_that_cannot_start_still_reaches_its_hooks(client, run_worker, recorders):
    handle = jobs.add.enqueue(1, 2)
    qk = get_keys().queue("default")
    env = decode_envelope(client.hget(qk.jobs, handle.id))
    env.name, env.meta = "tests.jobs.no_such_job", {"hooks": ["a"]}
    client.hset(qk.jobs, handle.id, encode_envelope(env))
    run_worker()
    assert client.zscore(qk.dead, handle.id) is not None
    assert [c[:2] for c in calls] == [("a", "after_run:failed"), ("a", "after_settle")]
