"""Running jobs: progress reports, cooperative cancellation, and iterable jobs
that resume from their saved cursor after a kill, a shutdown or an interrupt."""

from __future__ import annotations

import json
import signal
import time

import pytest

from steep import JobContext, JobStatus, ops
from steep.connection import get_keys
from tests import jobs_running as jr
from tests.conftest import wait_for


def _go(client, tag: str) -> None:
    client.set(f"test:{tag}:go", 1)


def _done(client, tag: str) -> list[int]:
    return [int(x) for x in client.lrange(f"test:{tag}:done", 0, -1)]


# -- progress ----------------------------------------------------------------------------


def test_progress_is_visible_while_running_and_cleared_after(client, run_worker):
    run_worker(burst=False)
    handle = jr.reports_progress.enqueue("p")
    # "step 2" follows "step 1" at once: a new message is written through, not held back
    info = wait_for(
        lambda: (j := ops.get_job("default", handle.id)) and j.progress and j,
        message="progress reported",
    )
    assert info.state == "running"
    assert info.progress["fraction"] == 0.4 and info.progress["message"] == "step 2"
    # the running list comes from the workers' heartbeats
    [row] = wait_for(ops.running_jobs, message="heartbeat lists the job")
    assert row["id"] == handle.id and row["progress"]["message"] == "step 2"
    [listed] = ops.list_jobs("default", "running").jobs
    assert listed.progress["fraction"] == 0.4
    _go(client, "p")
    assert handle.result(timeout=10) == "finished"
    assert not client.exists(get_keys().queue("default").progress(handle.id))


def test_async_progress(client, run_worker):
    run_worker(burst=False)
    handle = jr.async_reports_progress.enqueue("ap")
    wait_for(
        lambda: (ops.get_job("default", handle.id).progress or {}).get("fraction") == 0.25,
        message="async progress",
    )
    _go(client, "ap")
    assert handle.result(timeout=10) == "finished"
    assert not client.exists(get_keys().queue("default").progress(handle.id))


def test_progress_checks_its_arguments_and_is_a_no_op_outside_a_worker():
    ctx = JobContext("id", "name", "default", 1, "worker")
    ctx.progress(0.5, "fine")  # no worker run state: nothing is written
    assert not ctx.cancelled
    ctx.check_cancelled()
    for bad in (1.5, -0.1, float("nan"), "half", True):
        with pytest.raises(ValueError, match=r"from 0\.0 to 1\.0"):
            ctx.progress(bad)  # type: ignore[arg-type]


# -- cooperative cancellation ----------------------------------------------------------------


def test_cooperative_cancel_stops_a_thread_job_without_recycling(client, run_worker):
    worker = run_worker(burst=False)
    handle = jr.cooperative.enqueue("coop")
    wait_for(lambda: client.lrange("test:coop", 0, -1) == [b"started"], message="job start")
    ops.cancel_job("default", handle.id)
    wait_for(lambda: handle.status is JobStatus.DEAD, message="job cancelled")
    # it left its loop by itself: an injected exception would have skipped this mark
    assert client.lrange("test:coop", 0, -1) == [b"started", b"saw the flag"]
    error = json.loads(client.hget(get_keys().queue("default").errors, handle.id))
    assert error["type"] == "steep.Cancelled" and error["reason"] == "Cancelled"
    assert client.zcard(get_keys().queue("default").scheduled) == 0  # not retried
    assert worker.exit_code == 0 and not worker._stop.is_set()  # not recycled
    assert jr.reports_progress.enqueue("after").id  # the worker still takes jobs
    _go(client, "after")


# -- iterable jobs ---------------------------------------------------------------------------


def test_iterable_job_walks_to_the_end_and_forgets_its_cursor(client, run_worker):
    handle = jr.walk.enqueue("plain", 5)
    run_worker()
    assert handle.result(timeout=5) == 5
    assert _done(client, "plain") == [0, 1, 2, 3, 4]
    assert not client.exists(get_keys().queue("default").cursor(handle.id))
    assert jr.walk("inline", 2) is None and _done(client, "inline") == [0, 1]


def test_iterable_job_resumes_from_its_cursor_after_sigkill(client, worker_cli):
    first = worker_cli("worker", "tests.jobs_running", "-p", "1", "-c", "2")
    handle = jr.walk.enqueue("kill", 8, hold_at=4)
    wait_for(lambda: client.lrange("test:kill:held", 0, -1) == [b"4"], message="step 4")
    saved = ops.get_job("default", handle.id).cursor
    assert saved["cursor"] == 4 and saved["steps"] == 4 and not saved["done"]
    first.kill_tree()  # in step 4, after its side effect, before its cursor is saved
    _go(client, "kill")
    worker_cli("worker", "tests.jobs_running", "-p", "1", "-c", "2")
    assert handle.result(timeout=20) == 8
    # steps 0-3 were saved and never ran again; only step 4, in progress, repeated
    assert _done(client, "kill") == [0, 1, 2, 3, 4, 4, 5, 6, 7]
    # deleted right after the success is written
    key = get_keys().queue("default").cursor(handle.id)
    wait_for(lambda: not client.exists(key), message="cursor deleted")


def test_sigterm_stops_an_iterable_job_at_a_step_boundary_at_once(client, worker_cli):
    slow_deadline = {"STEEP_SHUTDOWN_TIMEOUT": "60"}
    first = worker_cli("worker", "tests.jobs_running", "-p", "1", "-c", "2", env=slow_deadline)
    handle = jr.walk.enqueue("term", 6, hold_at=2)
    wait_for(lambda: client.lrange("test:term:held", 0, -1) == [b"2"], message="step 2")
    first.signal(signal.SIGTERM)
    # the worker has seen the stop (it says so on its heartbeat) before step 2 ends
    wait_for(lambda: all(w.quiet for w in ops.workers()), message="worker stopping")
    _go(client, "term")
    started = time.monotonic()
    assert first.wait(30) == 0
    assert time.monotonic() - started < 15, "waited for the 60 s shutdown deadline"
    info = ops.get_job("default", handle.id)
    assert info.state == "queued" and info.attempt == 0
    assert info.cursor["cursor"] == 3
    assert _done(client, "term") == [0, 1, 2]
    worker_cli("worker", "tests.jobs_running", "-p", "1", "-c", "2")
    assert handle.result(timeout=20) == 6
    assert _done(client, "term") == [0, 1, 2, 3, 4, 5]  # nothing ran twice


def test_interrupt_parks_an_iterable_job_and_resume_continues_it(client, run_worker):
    worker = run_worker(burst=False)
    handle = jr.walk.enqueue("pause", 5, hold_at=1)
    wait_for(lambda: client.lrange("test:pause:held", 0, -1) == [b"1"], message="step 1")
    assert ops.interrupt_job("default", handle.id) == worker.worker_id
    wait_for(
        lambda: worker.running[handle.id].state.stopping == "interrupt", message="interrupt seen"
    )
    _go(client, "pause")
    wait_for(lambda: handle.status is JobStatus.INTERRUPTED, message="job parked")
    info = ops.get_job("default", handle.id)
    assert info.state == "interrupted" and info.cursor["cursor"] == 2 and info.attempt == 0
    assert [j.id for j in ops.list_jobs("default", "interrupted").jobs] == [handle.id]
    assert ops.list_jobs("default", "scheduled").jobs == []
    assert _done(client, "pause") == [0, 1]
    with pytest.raises(ops.OpsError, match="not running"):
        ops.interrupt_job("default", handle.id)
    ops.resume_job("default", handle.id)
    assert handle.result(timeout=10) == 5
    assert _done(client, "pause") == [0, 1, 2, 3, 4]
    with pytest.raises(ops.OpsError, match="not interrupted"):
        ops.resume_job("default", handle.id)


def test_interrupt_refuses_a_job_that_is_not_iterable(client, run_worker):
    run_worker(burst=False)
    handle = jr.reports_progress.enqueue("plainjob")
    wait_for(lambda: handle.status is JobStatus.RUNNING, message="job start")
    with pytest.raises(ops.OpsError, match="not an iterable job"):
        ops.interrupt_job("default", handle.id)
    _go(client, "plainjob")
    assert handle.result(timeout=10) == "finished"


def test_cancel_ends_an_iterable_job_at_its_step_and_keeps_the_cursor(client, run_worker):
    worker = run_worker(burst=False)
    handle = jr.walk.enqueue("cancelwalk", 5, hold_at=1)
    wait_for(lambda: client.lrange("test:cancelwalk:held", 0, -1) == [b"1"], message="step 1")
    ops.cancel_job("default", handle.id)
    wait_for(lambda: worker.running[handle.id].state.cancelled, message="cancel seen")
    _go(client, "cancelwalk")  # well within the grace before an exception is injected
    wait_for(lambda: handle.status is JobStatus.DEAD, message="job cancelled")
    assert _done(client, "cancelwalk") == [0, 1]  # stopped after the step, not retried
    assert ops.get_job("default", handle.id).cursor["cursor"] == 2
    ops.retry_jobs("default", [handle.id])  # a retry continues where it stopped
    wait_for(lambda: len(_done(client, "cancelwalk")) == 5, message="walk finished")
    assert _done(client, "cancelwalk") == [0, 1, 2, 3, 4]


def test_async_iterable_job_stops_at_a_step_on_shutdown(client, run_worker):
    worker = run_worker(burst=False)
    handle = jr.async_walk.enqueue("aw", 4, hold_at=1)
    wait_for(lambda: client.lrange("test:aw:held", 0, -1) == [b"1"], message="step 1")
    worker.threadsafe(worker.request_stop, "test")
    wait_for(lambda: worker.running[handle.id].state.stopping == "shutdown", message="stop")
    _go(client, "aw")
    wait_for(lambda: handle.status is JobStatus.QUEUED, message="job requeued")
    assert ops.get_job("default", handle.id).cursor["cursor"] == 2
    run_worker()
    wait_for(lambda: handle.status is None, message="job finished")
    assert _done(client, "aw") == [0, 1, 2, 3]


def test_iterable_job_needs_a_generator_with_a_cursor():
    from steep import job

    with pytest.raises(TypeError, match="needs a `cursor` parameter"):

        @job(iterable=True)
        def no_cursor(n: int):  # type: ignore[no-untyped-def]
            yield n

    with pytest.raises(TypeError, match="must be a generator function"):

        @job(iterable=True)
        def not_a_generator(n: int, cursor: int | None = None) -> None:
            return None


# -- dashboard and CLI ---------------------------------------------------------------------


@pytest.fixture
def web(client, monkeypatch):
    from starlette.testclient import TestClient

    from steep.web import create_app

    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    return TestClient(create_app(), client=("127.0.0.1", 50000))


def _csrf(html: str) -> str:
    import re

    return re.search(r'name="_csrf" value="([^"]+)"', html)[1]


def test_dashboard_shows_progress_and_interrupts_and_resumes(client, run_worker, web):
    worker = run_worker(burst=False)
    handle = jr.walk.enqueue("web", 4, hold_at=1)
    wait_for(lambda: client.lrange("test:web:held", 0, -1) == [b"1"], message="step 1")
    # step 0 reported 25 % ("item 0"); the running table is fed by the heartbeats
    table = wait_for(lambda: (t := web.get("/_/running").text) and "item 0" in t and t)
    assert '<progress class="jobprogress" max="100" value="25"' in table
    page = web.get(f"/jobs/default/{handle.id}").text
    assert "item 0" in page and "after 1 steps" in page and "/interrupt" in page
    assert "/resume" not in page
    done = web.post(
        f"/jobs/default/{handle.id}/interrupt",
        data={"_csrf": _csrf(page), "next": f"/jobs/default/{handle.id}"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "flash=Asked+worker" in done.headers["location"]
    wait_for(lambda: worker.running[handle.id].state.stopping == "interrupt", message="seen")
    _go(client, "web")
    wait_for(lambda: handle.status is JobStatus.INTERRUPTED, message="job parked")
    page = web.get(f"/jobs/default/{handle.id}").text
    assert "/resume" in page and "/interrupt" not in page and "s-interrupted" in page
    assert handle.id in web.get("/queues/default?state=interrupted").text
    web.post(
        f"/jobs/default/{handle.id}/resume",
        data={"_csrf": _csrf(page), "next": f"/jobs/default/{handle.id}"},
    )
    assert handle.result(timeout=10) == 4
    assert _done(client, "web") == [0, 1, 2, 3]


def test_cli_shows_progress_and_interrupts_and_resumes(client, run_worker):
    from click.testing import CliRunner

    from steep.cli import main

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args))
        return result.exit_code, result.output

    worker = run_worker(burst=False)
    handle = jr.walk.enqueue("cli", 4, hold_at=1)
    wait_for(lambda: client.lrange("test:cli:held", 0, -1) == [b"1"], message="step 1")
    code, out = run("jobs", "show", handle.id)
    assert code == 0 and "25% item 0" in out and "1 after 1 steps" in out
    wait_for(lambda: "25% item 0" in run("workers")[1], message="workers lists progress")
    code, out = run("jobs", "interrupt", handle.id)
    assert code == 0 and "asked worker" in out
    wait_for(lambda: worker.running[handle.id].state.stopping == "interrupt", message="seen")
    _go(client, "cli")
    wait_for(lambda: handle.status is JobStatus.INTERRUPTED, message="job parked")
    code, out = run("jobs", "list", "-s", "interrupted")
    assert code == 0 and handle.id in out
    assert run("jobs", "resume", handle.id)[0] == 0
    assert handle.result(timeout=10) == 4
    code, out = run("jobs", "resume", handle.id)
    assert code != 0 and "not interrupted" in out


def test_running_example(client, server):
    from tests.conftest import ROOT, run_example

    here = ROOT / "examples" / "running"
    lines = run_example(client, server, here, "run.py")
    assert lines == ["imported 1000 rows", "sum of squares: 2668667000"]
