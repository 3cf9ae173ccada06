"""Nothing is lost: a worker killed mid-run, a whole machine lost, the server restarted."""

from __future__ import annotations

import os
import signal
import time

import pytest

from steep.connection import get_keys
from tests import jobs
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def settled(client, tag: str, n: int) -> bool:
    return client.scard(f"test:seen:{tag}") == n


def test_sigkill_worker_process_mid_run_loses_nothing(client, worker_cli):
    n = 2000
    jobs.slow_record.enqueue_many([("kill", i, 0.002) for i in range(n)])
    cli = worker_cli("worker", "tests.jobs", "-p", "2", "-c", "10")
    wait_for(lambda: int(client.get("test:runs:kill") or 0) > 300, message="progress")
    victim = cli.children()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: settled(client, "kill", n), timeout=60, message="every job to run")
    runs = int(client.get("test:runs:kill"))
    # at least once: every job ran; the killed process's in-flight jobs may run twice
    assert runs >= n and runs - n <= 10
    qk = get_keys().queue("default")
    wait_for(lambda: client.hlen(qk.jobs) == 0, message="every job settled")
    assert client.llen(qk.queued) == 0
    cli.signal(signal.SIGTERM)
    assert cli.wait(30) == 0


def test_lost_machine_jobs_are_recovered_by_another_worker(client, worker_cli):
    """Kill the whole worker tree (supervisor too): only the heartbeat can tell."""
    n = 300
    jobs.slow_record.enqueue_many([("lost", i, 0.05) for i in range(n)])
    doomed = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "10")
    wait_for(lambda: int(client.get("test:runs:lost") or 0) > 20, message="progress")
    qk = get_keys().queue("default")
    doomed.kill_tree()
    killed_at = time.monotonic()
    orphaned = sum(client.llen(k) for k in client.scan_iter(f"{qk.inflight('*')}"))
    assert orphaned > 0  # jobs really were in flight when the machine went
    survivor = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "10")
    wait_for(lambda: settled(client, "lost", n), timeout=60, message="every job to run")
    recovery = time.monotonic() - killed_at
    # heartbeat_timeout is 1.5 s in the test config, beats every 0.2 s
    assert "stopped sending heartbeats" in survivor.text or recovery < 1.5
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(30) == 0


def test_server_restart_mid_run_loses_nothing(client, worker_cli, server):
    if not server.restartable:
        pytest.skip("the server under test is external")
    n = 2000
    # 20 ms each on 20 slots: the 1,700 jobs left after the first 300 take at least 1.7 s,
    # so the restart lands mid-run however fast the machine is
    jobs.slow_record.enqueue_many([("restart", i, 0.02) for i in range(n)])
    cli = worker_cli("worker", "tests.jobs", "-p", "2", "-c", "10")
    wait_for(lambda: int(client.get("test:runs:restart") or 0) > 300, message="progress")
    assert int(client.get("test:runs:restart")) < n - 500  # the run is far from over
    before = sorted(cli.children())
    server.restart(down_for=1.0)
    wait_for(lambda: settled(client, "restart", n), timeout=90, message="every job to run")
    assert int(client.get("test:runs:restart")) >= n
    assert cli.proc.poll() is None  # the workers rode it out
    # ... in the same processes: none crashed (their client retries, or the fetch loop's,
    # carried them over the outage; which one logs depends on where the outage hit)
    assert sorted(cli.children()) == before and len(before) == 2
    late = [jobs.add.enqueue(i, i) for i in range(20)]  # and keep working afterwards
    assert [h.result(timeout=10) for h in late] == [2 * i for i in range(20)]
    cli.signal(signal.SIGTERM)
    assert cli.wait(30) == 0
