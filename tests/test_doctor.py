"""`steep doctor` (steep.ops.doctor): each problem set up on a real server and found."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from steep import ops
from steep.cli import main
from steep.connection import SCRIPTS, get_keys, reset_clients
from steep.job import Envelope, encode_envelope
from steep.ops.doctor import Finding, diagnose
from steep.server import ensure_server
from steep.server.lifecycle import valkey_binary
from steep.settings import Settings, configure
from tests import jobs
from tests.conftest import wait_for
from tests.test_server import root  # noqa: F401  (the fixture)


def problems(findings: list[Finding], check: str) -> list[str]:
    return [f.message for f in findings if f.check == check and f.level == "problem"]


@pytest.fixture
def private_server(settings) -> Iterator[Callable[..., redis.Redis]]:
    """A valkey-server of the test's own, started with the given config, that steep is
    configured to use (the session server's settings cannot be bent for one test)."""
    started: list[subprocess.Popen[bytes]] = []
    data = Path(tempfile.mkdtemp(prefix="steep-doc-", dir="/tmp"))

    def start(*config: str) -> redis.Redis:
        sock = data / f"{len(started)}.sock"
        proc = subprocess.Popen(
            [
                str(valkey_binary()),
                *("--port", "0", "--unixsocket", str(sock), "--dir", str(data)),
                *config,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, message="the private server")
        reset_clients()
        configure(redis_url=f"unix://{sock}")
        return client

    yield start
    for proc in started:
        proc.kill()
        proc.wait(10)


def test_an_evicting_server_without_persistence_near_its_memory_limit(private_server):
    client = private_server("--maxmemory-policy", "allkeys-lru", "--appendonly", "no")
    client.config_set("save", "")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"] * 1.05)))
    found = diagnose(client)
    said = problems(found, "server settings")
    assert any("maxmemory-policy is allkeys-lru" in m for m in said), found
    assert any("no persistence" in m for m in said), found
    assert any("of maxmemory" in m for m in said), found


def test_a_healthy_server_has_no_problem_and_doctor_exits_0(private_server):
    private_server("--appendonly", "yes", "--maxmemory-policy", "noeviction")
    result = CliRunner().invoke(main, ["doctor", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["ok"] and report["problems"] == 0, result.output
    assert any("this process uses" in f["message"] for f in report["findings"])


def test_a_queue_with_jobs_and_no_worker(client):
    jobs.add.enqueue(1, 2)
    jobs.on_low.enqueue("x", 1)
    said = problems(diagnose(client), "workers")
    assert any("'default' holds 1 jobs" in m for m in said)
    assert any("'low' holds 1 jobs" in m for m in said)
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "PROBLEM  workers: queue 'default'" in result.output
    assert "fix: start one: `steep worker <your job modules> -q default`" in result.output


def test_a_job_name_no_worker_knows(client, run_worker):
    worker = run_worker(burst=False)  # live, registered with the names it can run
    ops.quiet(worker.worker_id)  # it stays registered and beating, and takes nothing
    wait_for(lambda: all(w.quiet for w in ops.workers()), message="the worker to go quiet")
    qk = get_keys().queue("default")
    stray = Envelope(id="stray1", name="billing.jobs.invoice", queue="default")
    SCRIPTS.enqueue(
        client, [qk.queued, qk.jobs, qk.state, qk.scheduled], ["stray1", encode_envelope(stray), 0]
    )
    jobs.add.enqueue(1, 1)  # a name the worker knows: not reported
    found = diagnose(client)
    assert problems(found, "job names") == [
        "1 jobs named 'billing.jobs.invoice' wait on queue 'default', and no live worker of "
        "that queue can run them (they go to the dead set as UnknownJob)"
    ]
    assert problems(found, "workers") == []  # a worker listens
    fixes = [f.fix for f in found if f.check == "job names"]
    assert "`steep worker billing.jobs ...`" in fixes[0]


def test_a_paused_queue_holding_jobs(client):
    jobs.add.enqueue(1, 1)
    jobs.add.enqueue(2, 2)
    ops.pause("default")
    found = diagnose(client)
    assert problems(found, "paused queues") == ["queue 'default' is paused with 2 jobs waiting"]
    ops.resume("default")
    assert problems(diagnose(client), "paused queues") == []


def test_jobs_stuck_in_flight(client):
    handle = jobs.add.enqueue(2, 2)
    qk = get_keys().queue("default")
    # the state a worker that lost its registration leaves: its in-flight list, no heartbeat
    client.lrem(qk.queued, 1, handle.id)
    client.rpush(qk.inflight("gone-worker"), handle.id)
    assert problems(diagnose(client), "in flight") == [
        "1 jobs are held by worker gone-worker, which is not registered"
    ]


def test_a_clock_off_the_servers(client):
    # The machine's clock cannot be moved here: a worker record written as a worker on a
    # machine 30 s ahead would write it (its heartbeat fresh, its measured skew) stands in.
    keys = get_keys()
    seconds, _ = client.time()
    client.zadd(keys.workers, {"far-ahead": seconds * 1000})
    client.hset(
        keys.worker("far-ahead"),
        mapping={"host": "box2", "queues": '["default"]', "jobs": "[]", "skew": 30.0},
    )
    said = problems(diagnose(client), "clocks")
    assert said and said[0].startswith("the clock of worker far-ahead on box2 is +30.0 s off")
    assert not [m for m in said if "this machine" in m]  # ours is right


def test_another_server_for_the_same_project(client, root: Path):  # noqa: F811
    project = root / "shop"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    # this process uses the URL; an embedded server runs for the project beside it
    ensure_server(Settings(data_dir=project / ".steep"))
    configure(data_dir=project / ".steep")
    said = problems(diagnose(client), "server")
    assert len(said) == 1 and f"with data dir {project / '.steep'}" in said[0]
    # and the embedded servers of one project that disagree on the data dir
    ensure_server(Settings(data_dir=project / "web" / ".steep"))
    configure(redis_url=None, data_dir=project / "web" / ".steep")
    reset_clients()
    started = time.monotonic()
    said = problems(diagnose(), "server")
    assert any(f"data dir {project / '.steep'}" in m for m in said), said
    assert time.monotonic() - started < 10
