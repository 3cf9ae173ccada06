"""steep.ops.jobs: listing with cursors and filters, show, edit, move, delete, retry, cancel."""

from __future__ import annotations

import time

import pytest

from steep import ops
from steep.connection import get_keys
from tests import jobs
from tests.conftest import wait_for


def _ids(page: ops.Page) -> list[str]:
    return [j.id for j in page.jobs]


def _make_retrying(client, handle, due_in: float = 3600) -> None:
    """Put a queued job where fail.lua puts a failed attempt waiting for its retry (a
    burst worker would wait for the retry instead of returning)."""
    qk = get_keys().queue(handle.queue)
    pipe = client.pipeline()
    pipe.lrem(qk.queued, 1, handle.id)
    pipe.zadd(qk.scheduled, {handle.id: int((time.time() + due_in) * 1000)})
    pipe.hset(qk.state, handle.id, "retrying")
    pipe.hset(qk.errors, handle.id, '{"type":"builtins.ValueError","message":"boom","attempt":1}')
    pipe.execute()


def test_queued_jobs_page_in_run_order_with_cursors(client):
    handles = [jobs.add.enqueue(i, i) for i in range(7)]
    first = ops.list_jobs("default", "queued", limit=3)
    assert _ids(first) == [h.id for h in handles[:3]]
    second = ops.list_jobs("default", "queued", cursor=first.cursor, limit=3)
    assert _ids(second) == [h.id for h in handles[3:6]]
    third = ops.list_jobs("default", "queued", cursor=second.cursor, limit=3)
    assert _ids(third) == [handles[6].id]
    assert third.cursor is None
    assert third.jobs[0].name == "tests.jobs.add" and third.jobs[0].args == [6, 6]


def test_filters_on_name_args_tag_and_error(client, run_worker):
    jobs.add.enqueue(1, 2)
    wanted = jobs.record.enqueue("needle-in-args", 1)
    for i in range(30):
        jobs.record.enqueue("hay", i)
    page = ops.list_jobs("default", "queued", limit=5, filter=ops.Filter(text="NEEDLE"))
    assert _ids(page) == [wanted.id]
    page = ops.list_jobs("default", "queued", limit=50, filter=ops.Filter(name="jobs.add"))
    assert [j.name for j in page.jobs] == ["tests.jobs.add"]
    # tags come from @job(tags=...) or .options(tags=...)
    tagged = jobs.record.options(tags=["billing"]).enqueue("tagged", 1)
    page = ops.list_jobs("default", "queued", filter=ops.Filter(tag="billing"))
    assert _ids(page) == [tagged.id] and page.jobs[0].tags == ["billing"]
    page = ops.list_jobs("default", "queued", filter=ops.Filter(tag="bill"))
    assert _ids(page) == []
    ops.clear("default")
    jobs.always_fails.options(retries=0).enqueue("x")
    jobs.selective.options(retries=0).enqueue("y", "permanent")
    run_worker()
    dead = ops.list_jobs("default", "dead", filter=ops.Filter(error="always fails"))
    assert [j.name for j in dead.jobs] == ["tests.jobs.always_fails"]
    assert dead.jobs[0].error["type"].endswith("ValueError")
    assert dead.jobs[0].died_at == pytest.approx(time.time(), abs=10)


def test_scheduled_and_retrying_are_told_apart(client):
    later = jobs.add.enqueue_in(3600, 1, 1)
    _make_retrying(client, jobs.always_fails.enqueue("t"))
    scheduled = ops.list_jobs("default", "scheduled")
    retrying = ops.list_jobs("default", "retrying")
    assert _ids(scheduled) == [later.id]
    assert scheduled.jobs[0].due_at == pytest.approx(time.time() + 3600, abs=10)
    assert [j.name for j in retrying.jobs] == ["tests.jobs.always_fails"]
    assert retrying.jobs[0].error["message"] == "boom"


def test_edit_args_in_place_then_a_worker_runs_the_edited_job(client, run_worker):
    handle = jobs.add.enqueue(1, 2)
    info = ops.edit_job("default", handle.id, args=[40, 2])
    assert info.args == [40, 2] and info.state == "queued"
    run_worker()
    assert handle.result(timeout=2) == 42


def test_edit_keeps_unknown_envelope_fields_and_refuses_stale_or_running(client):
    handle = jobs.add.enqueue(1, 2)
    qk = get_keys().queue("default")
    raw = client.hget(qk.jobs, handle.id).decode()
    client.hset(qk.jobs, handle.id, raw[:-1] + ',"trace":"abc"}')
    info = ops.edit_job("default", handle.id, kwargs={})
    assert info.extra == {"trace": "abc"}
    client.hset(qk.state, handle.id, "running w1 123")
    with pytest.raises(ops.OpsError, match="running"):
        ops.edit_job("default", handle.id, args=[1, 1])
    with pytest.raises(ops.OpsError, match="not waiting"):
        ops.edit_job("default", "nope", args=[1])


def test_edit_run_time_schedules_and_run_now_queues(client):
    handle = jobs.add.enqueue(1, 2)
    info = ops.edit_job("default", handle.id, run_at=time.time() + 600)
    assert info.state == "scheduled" and info.due_at == pytest.approx(time.time() + 600, abs=5)
    assert ops.queue("default").size == 0
    assert ops.run_now("default", [handle.id]) == 1
    assert ops.get_job("default", handle.id).state == "queued"
    assert ops.queue("default").size == 1


def test_move_to_another_queue_keeps_id_and_due_time(client):
    handle = jobs.add.enqueue_in(600, 1, 2)
    info = ops.move_job("default", handle.id, "low")
    assert info.queue == "low" and info.state == "scheduled"
    assert ops.get_job("default", handle.id) is None
    assert "low" in ops.queue_names()
    queued = jobs.add.enqueue(3, 4)
    ops.move_job("default", queued.id, "low")
    assert _ids(ops.list_jobs("low", "queued")) == [queued.id]


def test_delete_never_touches_running_jobs(client):
    a, b = jobs.add.enqueue(1, 1), jobs.add.enqueue(2, 2)
    client.hset(get_keys().queue("default").state, b.id, "running w1 1")
    assert ops.delete_jobs("default", [a.id, b.id]) == 1
    assert ops.get_job("default", a.id) is None
    assert ops.get_job("default", b.id).state == "running"


def test_retry_one_and_all_dead_jobs(client, run_worker):
    for i in range(3):
        jobs.always_fails.options(retries=0).enqueue(f"dead{i}")
    run_worker()
    dead = ops.list_jobs("default", "dead").jobs
    assert len(dead) == 3
    assert ops.retry_jobs("default", [dead[0].id]) == 1
    assert ops.get_job("default", dead[0].id).state == "queued"
    assert ops.get_job("default", dead[0].id).error is None
    assert ops.retry_all("default", "dead") == 2
    assert ops.queue("default").dead == 0 and ops.queue("default").size == 3


def test_delete_all_dead_and_retrying(client, run_worker):
    for i in range(3):
        jobs.always_fails.options(retries=0).enqueue(f"d{i}")
    run_worker()
    _make_retrying(client, jobs.always_fails.enqueue("r"))
    jobs.add.enqueue_in(3600, 1, 1)
    assert ops.delete_all("default", "dead") == 3
    assert ops.delete_all("default", "retrying") == 1
    assert ops.queue("default").scheduled == 1  # the scheduled job stays


def test_succeeded_jobs_are_listed_newest_first_from_an_index(client, run_worker):
    handles = []
    for i in range(3):  # one drain each, so their finish times are ordered
        handles.append(jobs.add.enqueue(i, 1))
        run_worker()
    jobs.record.enqueue("no-result", 1)
    worker = run_worker()
    page = ops.list_jobs("default", "succeeded", limit=2)
    assert _ids(page) == [handles[2].id, handles[1].id] and page.cursor is not None
    rest = ops.list_jobs("default", "succeeded", limit=2, cursor=page.cursor)
    assert _ids(rest) == [handles[0].id] and rest.cursor is None
    first = page.jobs[0]
    assert (first.name, first.result["value"], first.attempt) == ("tests.jobs.add", 3, 1)
    assert first.finished_at == pytest.approx(time.time(), abs=10) and first.duration >= 0
    assert first.worker and first.worker.split("-")[0] == worker.worker_id.split("-")[0]
    assert ops.get_job("default", handles[0].id).state == "succeeded"
    # an expired result drops out of the listing
    client.delete(get_keys().queue("default").result(handles[2].id))
    assert _ids(ops.list_jobs("default", "succeeded")) == [handles[1].id, handles[0].id]


def test_the_index_of_successes_is_capped(client, run_worker):
    from steep.worker import settle

    jobs.add.enqueue_many([(i, 0) for i in range(settle.DONE_INDEX_SIZE + 20)])
    run_worker()
    assert client.zcard(get_keys().queue("default").done) == settle.DONE_INDEX_SIZE


def test_running_jobs_show_their_worker(client, run_worker):
    handle = jobs.sleepy.enqueue(60)  # running until the test cancels it
    worker = run_worker(burst=False)
    page = wait_for(
        lambda: ops.list_jobs("default", "running").jobs, message="the job to be running"
    )
    assert page[0].id == handle.id and page[0].worker == worker.worker_id
    rows = wait_for(lambda: ops.running_jobs(), message="heartbeat with the running job")
    assert rows[0]["id"] == handle.id and rows[0]["name"] == "tests.jobs.sleepy"
    ops.cancel_job("default", handle.id)
    wait_for(lambda: not worker.running, message="the cancelled job to end")


def test_cancel_signals_the_worker(client):
    handle = jobs.add.enqueue(1, 1)
    with pytest.raises(ops.OpsError, match="not running"):
        ops.cancel_job("default", handle.id)
    client.hset(get_keys().queue("default").state, handle.id, "running w9 1")
    assert ops.cancel_job("default", handle.id) == "w9"
    assert client.lrange(get_keys().worker_signals("w9"), 0, -1) == [
        f"cancel default {handle.id}".encode()
    ]


@pytest.mark.parametrize("fn", [jobs.sleepy, jobs.async_sleepy], ids=["thread", "async"])
def test_cancel_a_running_job_ends_dead_as_cancelled(client, run_worker, fn):
    handle = fn.enqueue(30.0)
    run_worker(burst=False)
    wait_for(lambda: ops.list_jobs("default", "running").jobs, message="the job to run")
    ops.cancel_job("default", handle.id)
    info = wait_for(
        lambda: (j := ops.get_job("default", handle.id)) and j.state == "dead" and j,
        timeout=5,
        message="the job to be cancelled",
    )
    assert info.error["type"] == "steep.Cancelled"


def test_a_job_waiting_to_retry_is_retrying_everywhere_and_the_old_word_still_reads(
    client, run_worker
):
    from steep import JobStatus

    handle = jobs.fails_then_succeeds.options(backoff=600).enqueue("word", 5)
    worker = run_worker(burst=False)
    wait_for(lambda: handle.status is JobStatus.RETRYING, message="the first attempt to fail")
    worker.threadsafe(worker.request_stop)
    # stopped before the next job is enqueued, or it could run that one
    wait_for(lambda: not ops.workers(), message="the worker to stop")
    qk = get_keys().queue("default")
    assert client.hget(qk.state, handle.id) == b"retrying"  # the stored word too
    assert ops.get_job("default", handle.id).state == "retrying"
    assert JobStatus.FAILED is JobStatus.RETRYING  # the old name, kept as an alias
    # a record written by an earlier release ("failed") reads, lists and deletes the same
    old = jobs.add.enqueue(1, 2)
    _make_retrying(client, old)
    client.hset(qk.state, old.id, "failed")
    assert old.status is JobStatus.RETRYING
    assert ops.get_job("default", old.id).state == "retrying"
    assert old.id in _ids(ops.list_jobs("default", "retrying"))
    assert ops.delete_jobs("default", [old.id], only="retrying") == 1
