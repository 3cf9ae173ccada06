"""Restarts (worker/restarts.py, the supervisor): a tree whose processes do work never
gives up however often they are killed; only processes that die before they become
ready stop it, with the cause."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from steep import ops
from steep.worker.restarts import HEALTHY_AFTER, SlotHistory, rising
from steep.worker.supervisor import EXIT_CRASH_LOOP
from tests import jobs
from tests.conftest import FAST_CONFIG, wait_for


def test_back_off_doubles_while_processes_die_young_and_resets_once_one_worked():
    h = SlotHistory()
    now = time.time()
    h.died(-signal.SIGKILL, ready_for=HEALTHY_AFTER + 5, now=now)
    assert h.delay(0.5, 30) == 0.0  # a process that worked is restarted at once
    delays = []
    for _ in range(8):
        h.died(-signal.SIGKILL, ready_for=0.1, now=now)  # killed soon after it was ready
        delays.append(h.delay(0.5, 30))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    h.died(-signal.SIGKILL, ready_for=0.1, now=now, worked=True)  # it had finished jobs
    assert h.delay(0.5, 30) == 0.0
    assert h.unready == 0 and h.kills == 10
    h.died(1, ready_for=HEALTHY_AFTER, now=now)
    assert h.delay(0.5, 30) == 0.0 and h.kills == 0
    h.died(1, ready_for=None, now=now)  # never became ready: counts toward giving up
    h.died(1, ready_for=None, now=now)
    assert h.unready == 2 and h.delay(0.5, 30) == 1.0  # the third death in a row
    record = h.record()
    assert record["total"] == 13 and record["last_cause"] == "exit 1"


def test_restarts_older_than_the_window_are_not_counted():
    h = SlotHistory()
    h.died(-signal.SIGKILL, ready_for=5, now=time.time() - 3600)
    h.died(-signal.SIGKILL, ready_for=5, now=time.time())
    assert h.record()["count"] == 1 and h.record()["total"] == 2


def test_rising_memory_tells_a_leak_from_noise():
    assert rising([100, 120, 140, 160, 180, 200])
    assert not rising([100, 101, 99, 100, 102, 100])  # flat
    assert not rising([100, 200, 100, 200])  # jumps about
    assert not rising([100, 200])  # too few samples


def test_a_crash_loop_stops_the_supervisor_with_its_cause(client, worker_cli, tmp_path):
    config = tmp_path / "crash.toml"
    config.write_text(FAST_CONFIG + "give_up_after = 3\nrestart_delay = 0.05\n")
    cli = worker_cli(
        "worker",
        "tests.refuses_children",
        "-p",
        "1",
        env={"STEEP_WORKER_START": "spawn", "STEEP_CONFIG": str(config)},
    )
    assert cli.wait(60) == EXIT_CRASH_LOOP
    assert "worker processes cannot start: the last 3 of slot 0 ended before" in cli.text
    assert "RuntimeError: this module refuses to load in a worker process" in cli.text
    assert "give_up_after = 3" in cli.text
    assert cli.text.count("before it became ready") == 2  # two restarts, then it gave up


@pytest.mark.slow
def test_a_storm_of_sigkills_never_stops_a_tree_that_works(client, worker_cli):
    n = 10_000
    jobs.slow_record.enqueue_many([("storm", i, 0.01) for i in range(n)])
    cli = worker_cli("worker", "tests.jobs", "-p", "2", "-c", "4")
    wait_for(lambda: int(client.get("test:runs:storm") or 0) > 100, message="progress")
    kills = 0
    deadline = time.monotonic() + 240
    while client.scard("test:seen:storm") < n:
        assert time.monotonic() < deadline, f"{client.scard('test:seen:storm')} of {n} ran"
        assert cli.proc.poll() is None, cli.text[-3000:]  # the supervisor is still there
        children = cli.children()
        if children:
            os.kill(random.choice(children), signal.SIGKILL)
            kills += 1
        # the next kill in 1.5 s, unless every job has run by then
        next_kill = time.monotonic() + 1.5
        while time.monotonic() < next_kill and client.scard("test:seen:storm") < n:
            time.sleep(0.05)
    assert kills >= 5
    runs = int(client.get("test:runs:storm"))
    assert runs >= n  # every job ran; killed processes' in-flight ones may run twice
    assert cli.text.count("killed by SIGKILL") >= kills - 1  # each death said so
    assert "giving up" not in cli.text
    # the heartbeat records show the restarts per slot
    wait_for(
        lambda: any((w.restarts or {}).get("count", 0) >= 1 for w in ops.workers()),
        message="a worker record with its restarts",
    )
    record = next(w.restarts for w in ops.workers() if w.restarts)
    assert record["last_cause"] == "SIGKILL" and record["total"] >= 1
    assert json.dumps(record)  # plain JSON for the dashboard and the API
    cli.signal(signal.SIGTERM)
    assert cli.wait(30) == 0
