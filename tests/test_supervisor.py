"""`steep worker` as operators run it: processes, signals, restarts, recycling."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from steep.connection import get_keys
from tests import jobs, threaded_jobs
from tests.conftest import holds_for, wait_for


def registered(client) -> set[str]:
    return {w.decode() for w in client.zrange(get_keys().workers, 0, -1)}


def test_processes_and_concurrency(client, worker_cli):
    cli = worker_cli("worker", "tests.jobs", "-q", "default", "-p", "2", "-c", "3")
    wait_for(lambda: len(registered(client)) == 2, message="two worker processes")
    # both processes work: jobs one after another until each has run one (a burst sent
    # at once may all go to the process whose fetch started first)
    results: set[int] = set()

    def both_worked() -> bool:
        results.add(jobs.whoami.enqueue().result(timeout=10))
        return len(results) == 2

    wait_for(both_worked, timeout=30, message="a job run by each worker process")
    assert results <= set(cli.children())
    info = client.hgetall(get_keys().worker(next(iter(registered(client)))))
    assert info[b"concurrency"] == b"3"
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0
    assert registered(client) == set()


def test_sigterm_finishes_running_jobs_first(client, worker_cli):
    cli = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "4")
    wait_for(lambda: registered(client), message="worker start")
    for i in range(4):
        jobs.slow_record.enqueue("graceful", i, 1.0)
    wait_for(lambda: client.hlen(get_keys().queue("default").state) == 4, message="jobs to start")
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0
    # all four finished before the worker exited; nothing was returned or lost
    assert client.scard("test:seen:graceful") == 4
    assert client.llen(get_keys().queue("default").queued) == 0


def test_sigterm_deadline_returns_unfinished_jobs(client, worker_cli, tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("heartbeat_interval = 0.2\nheartbeat_timeout = 1.5\nshutdown_timeout = 0.5\n")
    cli = worker_cli(
        "worker", "tests.jobs", "-p", "1", "-c", "2", env={"STEEP_CONFIG": str(config)}
    )
    wait_for(lambda: registered(client), message="worker start")
    handles = [jobs.async_record.enqueue("deadline", i, 30.0) for i in range(2)]
    wait_for(lambda: client.hlen(get_keys().queue("default").state) == 2, message="jobs to start")
    started = time.monotonic()
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0
    assert time.monotonic() - started < 5
    qk = get_keys().queue("default")
    assert sorted(client.lrange(qk.queued, 0, -1)) == sorted(h.id.encode() for h in handles)
    assert all(h.status.value == "queued" for h in handles)
    assert "returning 2 unfinished jobs" in cli.text


def test_second_signal_stops_at_once(client, worker_cli):
    cli = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "2")
    wait_for(lambda: registered(client), message="worker start")
    handle = jobs.async_record.enqueue("hard", 1, 30.0)
    wait_for(lambda: handle.status.value == "running", message="job to start")
    started = time.monotonic()
    cli.signal(signal.SIGINT)
    time.sleep(0.2)
    cli.signal(signal.SIGINT)
    assert cli.wait(20) == 0
    assert time.monotonic() - started < 4  # well inside the 5 s grace
    assert handle.status.value == "queued"


def test_sigtstp_quiets(client, worker_cli):
    cli = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "2")
    wait_for(lambda: registered(client), message="worker start")
    cli.signal(signal.SIGTSTP)
    worker_id = next(iter(registered(client)))
    wait_for(
        lambda: client.hget(get_keys().worker(worker_id), "quiet") == b"1", message="quiet flag"
    )
    handle = jobs.add.enqueue(1, 2)
    # long enough for an active worker to have run it many times over. (A fetch that was
    # already blocked when the worker went quiet may take the job and hand it straight back,
    # so it can read "running" for a moment; it must never run.)
    holds_for(lambda: handle.status.value != "succeeded", 1.5, message="the job not run")
    wait_for(lambda: handle.status.value == "queued", message="the job back in its queue")
    assert cli.proc.poll() is None  # still alive
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0


def spawned(pid: int) -> bool:
    """Whether a worker process is a new interpreter (else a fork of its supervisor)."""
    return "steep.worker.child" in psutil.Process(pid).cmdline()


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_killed_worker_process_is_restarted_and_its_jobs_returned(client, worker_cli, start):
    cli = worker_cli(
        "worker", "tests.jobs", "-p", "1", "-c", "2", env={"STEEP_WORKER_START": start}
    )
    # The worker registers itself from inside the child; before that a spawned child may still
    # be between fork and exec, showing its parent's command line.
    wait_for(lambda: registered(client), message="worker start")
    assert len(cli.children()) == 1
    first = cli.children()[0]
    assert spawned(first) is (start == "spawn")
    handle = jobs.slow_record.enqueue("restart", 1, 1.0)
    wait_for(lambda: handle.status.value == "running", message="job to start")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: (kids := cli.children()) and kids[0] != first, message="a new process")
    wait_for(
        lambda: client.scard("test:seen:restart") == 1, timeout=10, message="the job to run again"
    )
    assert "killed by SIGKILL" in cli.text
    assert spawned(cli.children()[0]) is (start == "spawn")  # restarted the same way
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0


def test_an_application_with_threads_gets_spawned_workers(client, worker_cli):
    # Forking a process whose other threads may hold locks can hang the copy: steep spawns.
    cli = worker_cli("worker", "tests.threaded_jobs", "-p", "1")
    wait_for(lambda: registered(client), message="worker start")  # the child is past exec
    assert len(cli.children()) == 1
    assert spawned(cli.children()[0])
    handle = threaded_jobs.hello.options(result_ttl=60).enqueue("x")
    assert handle.result(timeout=10) == "hello x"
    assert "started threads at import (sdk-flusher)" in cli.text
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0


def test_max_memory_recycles_gracefully(client, worker_cli):
    cli = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "2", "--max-memory", "150")
    wait_for(lambda: len(cli.children()) == 1, message="worker process")
    first = cli.children()[0]
    handle = jobs.hog_memory.enqueue(200, 0.6)
    wait_for(
        lambda: (kids := cli.children()) and kids[0] != first,
        timeout=15,
        message="the process to be recycled",
    )
    assert handle.status is None, cli.text  # it finished (and was acknowledged) before the recycle
    assert "recycling this process" in cli.text
    assert psutil.pid_exists(first) is False or psutil.Process(first).status() == "zombie"
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0


def test_broken_app_module_fails_clearly(client, worker_cli):
    cli = worker_cli("worker", "tests.no_such_module")
    assert cli.wait(20) == 2
    assert "cannot import 'tests.no_such_module'" in cli.text


def test_worker_logs_one_line_per_job(client, worker_cli):
    cli = worker_cli("--log-format", "json", "worker", "tests.jobs", "-p", "1")
    wait_for(lambda: registered(client), message="worker start")
    ok = jobs.add.enqueue(1, 2)
    ok.result(timeout=5)
    bad = jobs.always_fails.options(retries=0).enqueue("logs")
    wait_for(lambda: bad.status is not None and bad.status.value == "dead", message="dead job")
    cli.signal(signal.SIGTERM)
    cli.wait(20)
    import json

    lines = [json.loads(line) for line in cli.output if line.startswith("{")]
    events = [x for x in lines if x.get("job_id") == ok.id]
    assert [x["event"] for x in events] == ["started", "succeeded"]
    done = events[1:]
    assert done[0]["job"] == "tests.jobs.add" and done[0]["queue"] == "default"
    assert done[0]["duration"] >= 0
    dead = [x for x in lines if x.get("job_id") == bad.id]
    assert [x["event"] for x in dead] == ["started", "dead"]
    assert dead[1]["error"] == "builtins.ValueError"


def test_deadline_is_kept_even_when_a_thread_job_will_not_stop(client, worker_cli, tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("heartbeat_interval = 0.2\nheartbeat_timeout = 1.5\nshutdown_timeout = 0.5\n")
    cli = worker_cli(
        "worker", "tests.jobs", "-p", "1", "-c", "2", env={"STEEP_CONFIG": str(config)}
    )
    wait_for(lambda: registered(client), message="worker start")
    handle = jobs.slow_record.enqueue("stubborn", 1, 60.0)  # a sync job in a thread
    wait_for(lambda: handle.status.value == "running", message="job to start")
    started = time.monotonic()
    cli.signal(signal.SIGTERM)
    assert cli.wait(20) == 0
    assert time.monotonic() - started < 5  # not the 60 s the thread would need
    assert handle.status.value == "queued"  # returned, not lost
