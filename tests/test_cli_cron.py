"""`steep cron list|pause|resume|trigger|forget`, run in-process with click's runner."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from steep import configure, ops
from steep.cli import main
from tests import cron_jobs
from tests.conftest import wait_for


# the in-process worker logs to the same output: assertions look for lines, not equality
def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    # a success's stdout alone: a worker running in this process may log to stderr meanwhile
    return result.exit_code, (result.output if result.exit_code else result.stdout)


def test_cron_list_pause_resume_trigger_forget(client, run_worker):
    configure(
        cron={
            "nightly": {
                "job": "tests.cron_jobs.record_tick",
                "schedule": "0 3 * * *",
                "timezone": "Europe/Berlin",
                "args": ["cli"],
            }
        }
    )
    code, out = run("cron", "list")
    assert code == 0 and "no cron entries" in out
    worker = run_worker(burst=False)
    wait_for(ops.cron_entries, message="the worker to publish its entry")

    code, out = run("cron", "list", "--json")
    assert code == 0, out
    (listed,) = json.loads(out)
    assert (listed["name"], listed["schedule"], listed["timezone"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Berlin",
    )
    assert listed["next_run"] > listed["seen"] and listed["paused"] is False
    code, out = run("cron")
    assert code == 0 and "nightly" in out and "0 3 * * *" in out and "in " in out

    code, out = run("cron", "pause", "nightly")
    assert code == 0 and "paused nightly\n" in out
    code, out = run("cron", "list")
    assert "paused" in out
    code, out = run("cron", "trigger", "nightly")
    assert code == 0, out
    job_id = re.search(r"^enqueued (\S+) for nightly$", out, re.M)[1]
    ran = wait_for(lambda: cron_jobs.runs("cli"), message="the triggered run")
    assert [r["id"] for r in ran] == [job_id]
    code, out = run("cron", "resume", "nightly")
    assert code == 0 and "resumed nightly\n" in out
    code, out = run("cron", "resume", "nightly")
    assert code == 2 and "nightly is not paused" in out

    code, out = run("cron", "trigger", "nope")
    assert code == 2 and "no cron entry 'nope'" in out

    worker.threadsafe(worker.request_stop, "test over")
    wait_for(lambda: client.zcard("steep:workers") == 0, message="the worker to stop")
    code, out = run("cron", "forget", "nightly")
    assert code == 0 and "forgot nightly" in out
    assert ops.cron_entries() == []
