"""`steep jobs|queues|workers|dead|stats`, run in-process with click's runner."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from steep import ops
from steep.cli import main
from tests import jobs
from tests.conftest import wait_for


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    # a success's stdout alone: a worker running in this process may log to stderr meanwhile
    return result.exit_code, (result.output if result.exit_code else result.stdout)


def test_jobs_list_show_edit_as_json_and_tables(client, run_worker):
    handle = jobs.add.enqueue(1, 2)
    code, out = run("jobs", "list", "--json")
    assert code == 0, out
    assert [j["id"] for j in json.loads(out)["jobs"]] == [handle.id]
    code, out = run("jobs", "list", "-q", "default", "--name", "add")
    assert code == 0 and handle.id in out and "tests.jobs.add" in out
    code, out = run("jobs", "edit", handle.id, "--args", "[20, 22]")
    assert code == 0, out
    code, out = run("jobs", "show", handle.id, "--json")
    assert json.loads(out)["args"] == [20, 22]
    code, out = run("jobs", "edit", handle.id, "--args", "{}")
    assert code == 2 and "must be a JSON array" in out
    run_worker()
    assert handle.result(timeout=1) == 42
    code, out = run("jobs", "show", handle.id)
    assert code == 0 and "succeeded" in out and "42" in out


def test_jobs_move_delete_and_paging_cursor(client):
    handles = [jobs.add.enqueue(i, i) for i in range(3)]
    code, out = run("jobs", "list", "-q", "default", "--limit", "2", "--json")
    data = json.loads(out)
    assert len(data["jobs"]) == 2 and data["cursors"]["default"]
    code, out = run("jobs", "move", handles[0].id, "low")
    assert code == 0 and ops.get_job("low", handles[0].id) is not None
    code, out = run("jobs", "delete", handles[1].id, handles[2].id, input="n\n")
    assert code == 2 and ops.queue("default").size == 2
    code, out = run("jobs", "delete", handles[1].id, handles[2].id, "--yes")
    assert code == 0 and "deleted 2 of 2" in out


def test_dead_retry_all_asks_unless_yes(client, run_worker):
    for i in range(2):
        jobs.always_fails.options(retries=0).enqueue(f"cli{i}")
    run_worker()
    code, out = run("dead", "--json")
    assert len(json.loads(out)["jobs"]) == 2
    code, out = run("dead", "retry", "--all", input="n\n")
    assert code == 2 and ops.queue("default").dead == 2
    code, out = run("dead", "retry", "--all", input="y\n")
    assert code == 0 and "queued 2" in out
    run_worker()
    code, out = run("dead", "delete", "--all", "--yes")
    assert code == 0 and "deleted 2" in out and ops.queue("default").dead == 0


def test_queues_pause_resume_clear(client):
    jobs.add.enqueue(1, 1)
    assert run("queues", "pause", "default")[0] == 0
    code, out = run("queues")
    assert "paused" in out
    code, out = run("queues", "--json")
    assert json.loads(out)[0]["paused"] is True
    run("queues", "resume", "default")
    assert not ops.queue("default").paused
    code, out = run("queues", "clear", "default", "--yes")
    assert code == 0 and ops.queue("default").size == 0


def test_workers_and_cancel(client, run_worker):
    worker = run_worker(burst=False)
    handle = jobs.sleepy.enqueue(30)
    wait_for(lambda: ops.running_jobs(), message="the job to run")
    code, out = run("workers")
    assert code == 0 and worker.worker_id in out and "tests.jobs.sleepy" in out
    code, out = run("jobs", "cancel", handle.id)
    assert code == 0 and worker.worker_id in out
    wait_for(lambda: ops.get_job("default", handle.id).state == "dead", message="cancelled")
    code, out = run("workers", "quiet", worker.worker_id)
    assert code == 0
    code, out = run("workers", "stop", "nobody")
    assert code == 2 and "no worker nobody" in out


def test_stats(client, run_worker):
    jobs.add.enqueue(1, 1)
    run_worker()
    code, out = run("stats", "--json")
    assert code == 0 and json.loads(out)["days"][-1]["processed"] == 1
    code, out = run("stats")
    assert code == 0 and "Per day" in out


def test_a_failed_jobs_error_says_which_worker_ran_it_and_when(client, run_worker):
    handle = jobs.always_fails.options(retries=0).enqueue("where")
    worker = run_worker()
    info = ops.get_job("default", handle.id)
    assert info.state == "dead" and info.error["worker"] == worker.worker_id
    assert info.error["at"] == pytest.approx(time.time(), abs=30)
    code, out = run("jobs", "show", handle.id)
    assert code == 0 and f"attempt 1 on {worker.worker_id}" in out
