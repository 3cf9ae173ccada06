"""Worker processes SIGKILLed at a steady rate (what the OOM killer does to a leaking job):
does the tree keep going, and what is lost or run twice?

    python benchmarks/storm.py                 # kills every 0.5, 1.5 and 3 s
    python benchmarks/storm.py --every 1.5 --jobs 10000

For each interval: 10,000 jobs of 10 ms, `steep worker -p 2 -c 4`, one worker process
SIGKILLed every interval until every job ran. Prints jobs done, lost, run twice, the
restarts the supervisor made and whether it is still running. A private Valkey server.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def storm(every: float, n: int, url: str) -> dict[str, object]:
    from steep import configure
    from steep.connection import get_client, reset_clients

    reset_clients()
    configure(redis_url=url)
    client = get_client()
    client.flushdb()
    from benchmarks import storm_jobs

    storm_jobs.work.enqueue_many([(i,) for i in range(n)])
    env = {**os.environ, "STEEP_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    log = tempfile.TemporaryFile()  # noqa: SIM115  (read after the run, closed below)
    cmd = [sys.executable, "-m", "steep", "worker", "benchmarks.storm_jobs", "-q", "storm"]
    sup = subprocess.Popen([*cmd, "-p", "2", "-c", "4"], env=env, stdout=log, stderr=log)
    started, kills = time.monotonic(), 0
    deadline = started + 600
    while client.scard("storm:seen") < n and time.monotonic() < deadline:
        if sup.poll() is not None:
            break
        next_kill = time.monotonic() + every
        while time.monotonic() < next_kill and client.scard("storm:seen") < n:
            time.sleep(0.02)
        children = psutil.Process(sup.pid).children() if sup.poll() is None else []
        if children and client.scard("storm:seen") < n:
            os.kill(random.choice(children).pid, signal.SIGKILL)
            kills += 1
    elapsed = time.monotonic() - started
    alive = sup.poll() is None
    done, runs = client.scard("storm:seen"), int(client.get("storm:runs") or 0)
    if alive:
        sup.send_signal(signal.SIGTERM)
        sup.wait(60)
    log.seek(0)
    text = log.read().decode(errors="replace")
    log.close()
    return {
        "every_s": every,
        "jobs": n,
        "done": done,
        "lost": n - done,
        "ran_twice": runs - done,
        "kills": kills,
        "restarts": text.count("killed by SIGKILL"),
        "gave_up": "giving up" in text,
        "supervisor_alive": alive,
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, action="append", help="seconds between kills")
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    from steep import server
    from steep.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="steep-storm-"))
    settings = Settings(data_dir=data)
    url = f"unix://{server.ensure_server(settings)}"
    try:
        print("every_s  jobs  done  lost  ran_twice  kills  restarts  gave_up  alive  seconds")
        for every in args.every or [0.5, 1.5, 3.0]:
            r = storm(every, args.jobs, url)
            print(
                f"{r['every_s']:>7}  {r['jobs']:>4}  {r['done']:>4}  {r['lost']:>4}  "
                f"{r['ran_twice']:>9}  {r['kills']:>5}  {r['restarts']:>8}  {r['gave_up']!s:>7}  "
                f"{r['supervisor_alive']!s:>5}  {r['seconds']:>7}",
                flush=True,
            )
    finally:
        server.stop_server(settings)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
