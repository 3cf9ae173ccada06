"""Failover chaos and the cost of a cluster, on real servers started here.

    python benchmarks/failover.py                 # all runs below, figures as one table
    python benchmarks/failover.py --jobs 2000     # a quicker, smaller run

Runs, each with `steep worker` processes draining jobs enqueued one by one
(tests/topologies.py starts the servers from the pip-installed valkey-server):

- sentinel:   a primary, two replicas, three sentinels; the primary is SIGKILLed a third
              of the way in, with min_replicas_ack = 1 and then 0.
- cluster:    three primaries and three replicas; the primary of the queue's slot is
              SIGKILLed (it rejoins as a replica once its replica took over).
- overhead:   single enqueue and noop drain rates on one server against the same on the
              cluster, side by side in one run.

Figures: the longest stall of the drain after the kill (s), jobs lost, duplicate runs,
enqueues the producer had to repeat. docs/scaling.md keeps the latest table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import jobs as test_jobs  # noqa: E402
from tests.conftest import FAST_CONFIG, WorkerCLI  # noqa: E402
from tests.topologies import Cluster, SentinelGroup, drain_through  # noqa: E402

from steep import connection, server  # noqa: E402
from steep.settings import Settings, configure  # noqa: E402


def chaos(kind: str, jobs: int, processes: int, replicas_ack: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="steep-chaos-"))
    topology = SentinelGroup() if kind == "sentinel" else Cluster()
    try:
        if isinstance(topology, SentinelGroup):
            group = topology
            kill = lambda: group.primary().kill()  # noqa: E731
        else:
            cluster = topology
            primary = cluster.primary_of("steep:{default}:queued")
            kill = lambda: cluster.kill_primary_then_rejoin(primary)  # noqa: E731
        started = time.monotonic()
        figures = drain_through(
            topology.url, jobs, processes, replicas_ack, kill, jobs // 3, work, timeout=300
        )
        figures["seconds"] = round(time.monotonic() - started, 1)
        return figures
    finally:
        topology.stop()
        shutil.rmtree(work, ignore_errors=True)


def rates(url: str, jobs: int, work: Path) -> dict[str, float]:
    """Single-call enqueue rate, then the drain rate of one `steep worker -p 2 -c 10`."""
    configure(redis_url=url)
    connection.reset_clients()
    client = connection.make_client()
    client.flushall()
    start = time.perf_counter()
    for i in range(jobs):
        test_jobs.add.enqueue(i, i)  # a job that does next to nothing
    enqueue = jobs / (time.perf_counter() - start)
    config = work / "steep-rates.toml"
    config.write_text(FAST_CONFIG)
    env = {"STEEP_REDIS_URL": url, "STEEP_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    import os

    worker = WorkerCLI(["worker", "tests.jobs", "-p", "2", "-c", "10"], {**os.environ, **env})
    start = time.perf_counter()
    try:
        while client.hlen("steep:{default}:jobs") > 0:
            time.sleep(0.01)
        drain = jobs / (time.perf_counter() - start)
    finally:
        worker.kill_tree()
        client.close()
        connection.reset_clients()
    return {"enqueue_per_s": round(enqueue), "drain_per_s": round(drain)}


def overhead(jobs: int) -> dict[str, dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="steep-overhead-"))
    settings = Settings(data_dir=work / "valkey", fsync="no")
    single = f"unix://{server.ensure_server(settings)}"
    cluster = Cluster()
    try:
        return {
            "single server": rates(single, jobs, work),
            "cluster": rates(cluster.url, jobs, work),
        }
    finally:
        cluster.stop()
        server.stop_server(settings)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--only", choices=["sentinel", "cluster", "overhead"])
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    print(f"# {args.jobs} jobs, {args.processes} worker processes, commit {commit}")
    runs = [("sentinel", 1), ("sentinel", 0), ("cluster", 1), ("cluster", 0)]
    for kind, ack in runs:
        if args.only in (None, kind):
            figures = chaos(kind, args.jobs, args.processes, ack)
            print(f"{kind:9} min_replicas_ack={ack}: {figures}", flush=True)
    if args.only in (None, "overhead"):
        for name, figures in overhead(args.jobs).items():
            print(f"{name:14} {figures}", flush=True)


if __name__ == "__main__":
    main()
