"""steep.testing: inline mode, fake mode and its assertions, drain(), the pytest plugin."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from steep import JobFailed, JobStatus, batch, chain, group
from steep.testing import drain, fake, inline
from tests import testing_jobs as tj
from tests.conftest import ROOT

DAY = date(2026, 12, 1)


def test_inline_runs_each_job_at_enqueue_as_a_worker_would(client):
    tj.SEEN.clear()
    with inline():
        handle = tj.send_welcome.enqueue(7, DAY)
        assert handle.status is JobStatus.SUCCEEDED
        assert handle.result() == "welcome 7 on 2026-12-01"
        assert tj.SEEN == [("mail", 1)]  # current_job() was set, the argument converted
        assert tj.count_words.enqueue("three little words").result() == 3  # async, from sync
        assert asyncio.run(_aenqueue()) == 2  # and from async code
        assert tj.sign_up.enqueue(8).result() == 8 and tj.SEEN[-1] == ("mail", 1)
        with pytest.raises(ValueError, match="on purpose"):
            tj.broken.enqueue("on purpose")  # the job's error reaches the test
        with pytest.raises(TypeError, match="cannot be encoded"):
            tj.send_welcome.enqueue(object(), DAY)  # encoded as for real
    assert client.dbsize() == 0  # nothing reached the server
    handle = tj.send_welcome.enqueue(9, DAY)  # off again: a real enqueue
    assert handle.status is JobStatus.QUEUED


async def _aenqueue() -> int:
    job = await tj.count_words.aenqueue("two words")
    return int(await job.aresult())


def test_inline_without_raising_marks_the_job_dead():
    with inline(raise_errors=False):
        handle = tj.broken.enqueue("boom")
    assert handle.status is JobStatus.DEAD
    with pytest.raises(JobFailed) as caught:
        handle.result()
    assert caught.value.type == "builtins.ValueError" and caught.value.message == "boom"


def test_fake_records_jobs_and_its_assertions_say_what_was_enqueued(client):
    with fake() as jobs:
        tj.send_welcome.enqueue(1, DAY)
        tj.send_welcome.enqueue_in(60, 2, DAY)
        tj.count_words.enqueue_many([("a b",), ("c",)])
        welcomes = jobs.jobs(tj.send_welcome)
        assert [j.args for j in welcomes] == [[1, "2026-12-01"], [2, "2026-12-01"]]
        assert jobs.jobs(tj.send_welcome)[1].at is not None
        jobs.assert_enqueued(tj.send_welcome, 1, DAY)
        jobs.assert_enqueued(tj.send_welcome, queue="mail", count=2)
        jobs.assert_enqueued("tests.testing_jobs.count_words", count=2)
        jobs.assert_not_enqueued(tj.broken)
        with pytest.raises(AssertionError, match=r"send_welcome\(3, .*enqueued: .*send_welcome"):
            jobs.assert_enqueued(tj.send_welcome, 3, DAY)
        with pytest.raises(AssertionError, match=r"1 time.*found 2"):
            jobs.assert_enqueued(tj.send_welcome, count=1)
        with pytest.raises(AssertionError, match="expected no"):
            jobs.assert_not_enqueued(tj.count_words)
        jobs.clear()
        tj.sign_up.enqueue(5)
        assert jobs.drain() == [5, "welcome 5 on 2026-12-01"]  # what a job enqueues runs too
        assert jobs.jobs() == []
    assert client.dbsize() == 0


def test_inline_batches_run_their_members_then_their_callbacks(client):
    tj.REPORTS.clear()
    with inline():
        with batch(on_complete=tj.report.s("done"), on_success=tj.report.s("ok")) as b:
            members = [b.add(tj.double.s(i)) for i in range(3)]
            assert tj.REPORTS == []  # members run when the block ends, as they are enqueued
        assert [m.result() for m in members] == [0, 2, 4]
        assert [label for label, _ in tj.REPORTS] == ["done", "ok"]  # each once, in order
        assert tj.REPORTS[0][1]["total"] == 3 and tj.REPORTS[0][1]["succeeded"] == 3
        status = b.status()
        assert status is not None and status.state == "succeeded" and status.pending == 0
        assert b.wait().callbacks_done == ["complete", "success"]
        assert b.callback_job("success").result() == "ok: 3/3"

        steps = chain(tj.add.s(1, 2), tj.double.s(), tj.double.s()).enqueue()
        assert steps.results() == [3, 6, 12]  # each step got the previous result first
        fanned = (group(tj.double.s(i) for i in range(4)) | tj.total.s()).enqueue()
        assert fanned.results() == [0, 2, 4, 6] and tj.REPORTS[-1] == ("total", [0, 2, 4, 6])
        assert fanned.callback_job().result() == 12
    assert client.dbsize() == 0  # none of it reached the server


def test_inline_batch_with_a_dead_member_completes_without_success():
    tj.REPORTS.clear()
    with inline(raise_errors=False) as mode:
        with batch(on_complete=tj.report.s("done"), on_success=tj.report.s("ok")) as b:
            for i in range(3):
                b.add(tj.fails_for.s(i, 1))
        status = b.wait()
        assert status.state == "failed" and (status.succeeded, status.failed) == (2, 1)
        assert len(status.failed_ids) == 1
        assert [label for label, _ in tj.REPORTS] == ["done"]  # no on_success
        stopped = chain(tj.fails_for.s(1, 1), tj.double.s()).enqueue()
        assert stopped.wait().state == "failed" and stopped.results() == []  # never went on
        assert [s.kind for s in mode.batches()] == ["batch", "chain"]
    # raising: the test sees the member's error
    with inline(), pytest.raises(ValueError, match="fails on purpose"), batch() as b:
        b.add(tj.fails_for.s(1, 1))


def test_inline_child_batch_completes_its_parent_after_it():
    tj.REPORTS.clear()
    with inline() as mode:
        with batch(on_success=tj.report.s("parent")) as parent:
            parent.add(tj.fan_out.s(3))
        assert [label for label, _ in tj.REPORTS] == ["child", "parent"]
        assert tj.REPORTS[1][1]["total"] == 2  # the member that fanned out, and its batch
        child = next(s for s in mode.batches() if s.parent == parent.id)
        assert child.state == "succeeded" and child.total == 3


def test_fake_records_batch_members_and_drain_runs_them_and_the_callbacks(client):
    tj.REPORTS.clear()
    with fake() as jobs:
        with batch(on_success=tj.report.s("ok")) as b:
            first = b.add(tj.double.s(1))
            b.add(tj.double.s(2))
        jobs.assert_enqueued(tj.double, 1)
        jobs.assert_enqueued(tj.double, count=2)
        jobs.assert_not_enqueued(tj.report)  # callbacks wait for the members
        status = b.status()
        assert status is not None and (status.state, status.pending) == ("running", 2)
        with pytest.raises(TimeoutError, match=r"2 of its 2 jobs have not run.*drain"):
            b.wait()
        chain(tj.add.s(1, 1), tj.double.s()).enqueue()
        assert len(jobs.jobs(tj.add)) == 1 and len(jobs.jobs(tj.double)) == 2  # step one only
        assert jobs.drain() == [2, 4, 2, "ok: 2/2", 4]
        assert b.wait().state == "succeeded"
        assert [label for label, _ in tj.REPORTS] == ["ok"] and tj.REPORTS[0][1]["total"] == 2
        assert first.status is JobStatus.SUCCEEDED and first.result() == 2  # handles follow
        assert [s.state for s in jobs.batches()] == ["succeeded", "succeeded"]
    assert client.dbsize() == 0


def test_drain_runs_everything_queued_on_the_server(client):
    handles = [tj.sign_up.enqueue(i) for i in range(3)]
    assert drain() == 6  # three sign-ups and the three mails they enqueued
    assert [h.result(timeout=1) for h in handles] == [0, 1, 2]
    tj.send_welcome.enqueue_in(3600, 1, DAY)
    with pytest.raises(TimeoutError, match="still had jobs"):
        drain(["mail"], timeout=0.5)


PLUGIN_TESTS = """
from datetime import date

from steep import JobStatus
from tests import testing_jobs as tj


def test_first(steep):
    job = tj.sign_up.enqueue(1)
    assert steep.drain() == 2 and job.result(timeout=1) == 1
    tj.send_welcome.enqueue(2, date(2026, 12, 1))  # left behind on purpose


def test_second_starts_flushed(steep):
    assert steep.client.keys("steep:*") == []


def test_modes(steep_inline, steep_fake):
    raise AssertionError("never reached: one test gets one mode")


def test_fake_fixture(steep_fake):
    tj.sign_up.enqueue(3)
    steep_fake.assert_enqueued(tj.sign_up, 3)


def test_inline_fixture(steep_inline):
    assert tj.sign_up.enqueue(4).status is JobStatus.SUCCEEDED
"""


@pytest.mark.slow
def test_the_pytest_plugin_gives_a_private_server_and_a_flushed_namespace(tmp_path: Path):
    (tmp_path / "test_app.py").write_text(textwrap.dedent(PLUGIN_TESTS))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 passed, 1 error" in done.stdout, done.stdout
    assert "test_modes uses steep_fake and steep_inline: a test runs in one mode" in done.stdout
