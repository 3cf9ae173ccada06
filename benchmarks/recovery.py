"""Measure how long jobs of a SIGKILLed worker stay in limbo, with default settings.

Two cases:
- one worker process killed (its supervisor survives and returns the jobs);
- a whole worker tree killed, as when a machine is lost (another worker's
  heartbeat reaper returns the jobs once the heartbeat has expired).
Each case: a job that sleeps runs on the doomed worker; we kill it and time
until the same job starts again elsewhere.

    python benchmarks/recovery.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
JOBS = """
import time
from steep import job
from steep.connection import get_client

@job(queue="recovery")
def sleeper(tag: str) -> None:
    get_client().rpush("recovery:starts:" + tag, repr(time.time()))
    time.sleep(3600)
"""


def start_worker(env: dict[str, str], cwd: Path, queue: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steep",
            "--log-level",
            "warning",
            "worker",
            "recovery_jobs",
            "-q",
            queue,
            "-p",
            "1",
            "-c",
            "2",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(cwd / "worker.log", "ab"),
        start_new_session=True,
    )


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    try:
        parent = psutil.Process(proc.pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait()


def wait_starts(client, tag: str, n: int, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = client.lrange(f"recovery:starts:{tag}", 0, -1)
        if len(starts) >= n:
            return float(starts[n - 1])
        time.sleep(0.005)
    raise TimeoutError(f"job {tag} did not start {n} times")


def measure(case: str, client, env: dict[str, str], cwd: Path) -> float:
    from steep.registry import import_job

    sleeper = import_job("recovery_jobs.sleeper")
    tag = f"{case}-{time.time_ns()}"
    # a queue of its own per round: earlier rounds' sleepers stay out of the way
    queue = f"recovery-{tag}"
    doomed = start_worker(env, cwd, queue)
    survivor = None
    try:
        sleeper.options(queue=queue).enqueue(tag)
        wait_starts(client, tag, 1)
        victims = [c.pid for c in psutil.Process(doomed.pid).children()]
        if case == "process":
            killed = time.time()
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
        else:
            # a second machine's worker, idle, comes up after the job started
            before = client.zcard("steep:workers")
            survivor = start_worker(env, cwd, queue)
            deadline = time.monotonic() + 30
            while client.zcard("steep:workers") <= before and time.monotonic() < deadline:
                time.sleep(0.01)
            killed = time.time()
            kill_tree(doomed)
        restarted = wait_starts(client, tag, 2)
        return restarted - killed
    except TimeoutError:
        print((cwd / "worker.log").read_text()[-3000:])
        raise
    finally:
        kill_tree(doomed)
        if survivor:
            kill_tree(survivor)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="steep-recovery-") as tmp:
        cwd = Path(tmp)
        (cwd / "recovery_jobs.py").write_text(JOBS)
        env = {
            **os.environ,
            "STEEP_REDIS_URL": "",
            "STEEP_DATA_DIR": str(cwd / "data"),
            "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT / 'src'}",
        }
        os.environ.update({k: env[k] for k in ("STEEP_REDIS_URL", "STEEP_DATA_DIR")})
        sys.path.insert(0, str(cwd))
        from steep import server
        from steep.connection import get_client
        from steep.settings import get_settings

        settings = get_settings()
        server.ensure_server(settings)
        client = get_client()
        try:
            print(
                f"heartbeat every {settings.heartbeat_interval} s, "
                f"expires after {settings.heartbeat_timeout} s"
            )
            for case in ("process", "machine"):
                times = [
                    t
                    for t in (measure(case, client, env, cwd) for _ in range(args.repeats))
                    if t == t
                ]
                print(
                    f"{case:8s} killed -> job running again: "
                    f"median {statistics.median(times):.2f} s,"
                    f" min {min(times):.2f} s, max {max(times):.2f} s (n={len(times)})"
                )
        finally:
            client.close()
            server.stop_server(settings)


if __name__ == "__main__":
    main()
