"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from steep.connection import get_keys
from tests import jobs
from tests.conftest import ROOT, wait_for


def steep(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "steep", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_enqueue_with_json_arguments(client):
    out = steep("enqueue", "tests.jobs.add", "2", "40")
    assert out.returncode == 0, out.stderr
    assert "enqueued" in out.stdout and "tests.jobs.add" in out.stdout
    qk = get_keys().queue("default")
    assert client.llen(qk.queued) == 1


def test_enqueue_and_wait_for_the_result(client, run_worker):
    worker = run_worker(burst=False)
    out = steep("enqueue", "tests.jobs.add", "2", "40", "--wait", "10")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("42")
    worker.threadsafe(worker.request_stop)


def test_enqueue_kwargs_queue_and_delay(client):
    out = steep(
        "enqueue",
        "tests.jobs.add",
        "1",
        "--kwargs",
        '{"b": 2}',
        "--queue",
        "critical",
        "--in",
        "30",
    )
    assert out.returncode == 0, out.stderr
    qk = get_keys().queue("critical")
    assert client.zcard(qk.scheduled) == 1


def test_enqueue_bad_input_is_explained(client):
    out = steep("enqueue", "tests.jobs.add", "two", "3")
    assert out.returncode == 2
    assert "argument 1 is not valid JSON: 'two'" in out.stderr
    out = steep("enqueue", "tests.jobs.nothing_here", "1")
    assert out.returncode == 2 and "no job named 'tests.jobs.nothing_here'" in out.stderr
    out = steep("enqueue", "tests.jobs.add", "1", "--kwargs", "[1]")
    assert out.returncode == 2 and "--kwargs must be a JSON object" in out.stderr


def test_status_json_and_table(client, run_worker):
    jobs.add.enqueue_many([(i, i) for i in range(5)])
    jobs.add.enqueue_in(60, 1, 1)
    worker = run_worker(burst=False, concurrency=3)
    wait_for(lambda: client.llen(get_keys().queue("default").queued) == 0, message="drain")
    wait_for(
        lambda: int(client.hget(get_keys().queue("default").stats, "processed") or 0) == 5,
        message="acks",
    )
    jobs.on_low.enqueue("status", 1)  # a queue nobody works on
    out = steep("status", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    queues = {q["name"]: q for q in data["queues"]}
    assert queues["default"]["processed"] == 5 and queues["default"]["scheduled"] == 1
    assert queues["low"]["size"] == 1 and queues["low"]["oldest_age"] >= 0
    assert data["totals"]["workers"] == 1
    assert data["workers"][0]["id"] == worker.worker_id
    assert data["workers"][0]["concurrency"] == 3
    table = steep("status")
    assert table.returncode == 0
    assert "default" in table.stdout and worker.worker_id in table.stdout
    worker.threadsafe(worker.request_stop)


def test_broken_config_file_names_file_and_line(tmp_path):
    (tmp_path / "steep.toml").write_text("concurrency = 4\n\n[production]\nconcurency = 8\n")
    out = steep("status", cwd=tmp_path, env={"STEEP_ENV": "production", "STEEP_REDIS_URL": ""})
    assert out.returncode == 2
    assert "steep.toml:4" in out.stderr and "[production]" in out.stderr
    assert "did you mean 'concurrency'" in out.stderr
    (tmp_path / "steep.toml").write_text("concurrency = [\n")
    out = steep("status", cwd=tmp_path, env={"STEEP_REDIS_URL": ""})
    assert out.returncode == 2 and "steep.toml:" in out.stderr and "invalid TOML" in out.stderr


@pytest.mark.slow
def test_demo_runs_on_a_fresh_embedded_server(tmp_path):
    env = {"STEEP_REDIS_URL": "", "STEEP_DATA_DIR": str(tmp_path / "data")}
    out = steep("demo", "--jobs", "12", cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Summary: " in out.stdout
    for kind in ("fast", "slow", "async", "retried", "scheduled", "dead"):
        assert kind in out.stdout
    assert "delivered to" in out.stdout and "on attempt 2" in out.stdout
    assert "Embedded Valkey stopped" in out.stdout
    status = steep("server", "--status", cwd=tmp_path, env=env)
    assert "not running" in status.stdout


def test_the_worker_command_starts_without_the_operator_commands():
    """`steep worker` loads neither rich nor the operations layer (they cost start time)."""
    probe = (
        "import sys\n"
        "from steep.cli import main\n"
        "try:\n"
        "    main(['worker', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m == 'rich' or m.startswith('steep.ops'))\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout


def test_worker_settings_set_in_the_modules_reach_every_process(worker_cli):
    # tests/env_configured.py sets STEEP_LOG_FORMAT in os.environ and configures queues
    # and concurrency at import (not imported here: it would change this process's settings)
    from steep import client
    from steep.options import JobOptions

    name = "tests.env_configured.configured_in_code"
    opts = JobOptions(queue="from-module", result_ttl=60)
    handle = client.enqueue(name, opts, (21,), {})
    cli = worker_cli("worker", "tests.env_configured", "--burst", "-p", "1")
    assert cli.wait(60) == 0, cli.text
    lines = [json.loads(line) for line in cli.output]  # every process logs JSON
    said = [line["msg"] for line in lines]
    assert any("x 3 concurrency on queues from-module,default" in m for m in said), said
    assert handle.result(timeout=5) == 42
