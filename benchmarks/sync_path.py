"""The sync path in one process: plain-function jobs drained by `worker_mode` loop and threads.

    python benchmarks/sync_path.py [--jobs 20000] [--slots 10] [--rounds 2]

Starts its own private Valkey (the pip-installed binary, no persistence, a unix socket),
enqueues `--jobs` jobs whose body is one `INCR` on a module-level redis-py client, and drains
them with an in-process `WorkerProcess(..., burst=True).run()` in each mode, alternating, for
`--rounds` rounds. Prints jobs/s, CPU µs per job (`time.process_time()`: every thread of the
process) and context switches per job (`getrusage`: voluntary and involuntary, every thread
of the process). docs/benchmark-method.md, "Sync jobs at equal process
counts", has its figures.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis


def switches() -> int:
    """Context switches of the whole process so far, its ended threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def drain(mode: str, jobs: int, slots: int, noop: Any, r: redis.Redis) -> tuple[float, ...]:
    from steep.settings import configure
    from steep.worker import WorkerProcess, parse_queues

    configure(worker_mode=mode)
    r.delete("sync-path:done")
    for first in range(0, jobs, 1000):
        noop.enqueue_many([(i,) for i in range(first, min(first + 1000, jobs))])
    worker = WorkerProcess(parse_queues("sync-path"), slots, burst=True, install_signals=False)
    s0, t0, c0 = switches(), time.perf_counter(), time.process_time()
    worker.run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if int(r.get("sync-path:done") or 0) != jobs:
        raise SystemExit(f"{mode}: {r.get('sync-path:done')} of {jobs} jobs ran")
    return jobs / seconds, cpu / jobs * 1e6, (switches() - s0) / jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from steep import connection, job, server
    from steep.settings import Settings, configure

    workdir = Path(tempfile.mkdtemp(prefix="steep-sync-path-"))
    settings = Settings(data_dir=workdir / "valkey", fsync="no")
    url = f"unix://{server.ensure_server(settings)}"
    try:
        configure(redis_url=url, log_level="WARNING")
        connection.reset_clients()
        r = redis.Redis.from_url(url)
        body = redis.Redis.from_url(url)

        @job(queue="sync-path", name="sync_path.noop")
        def noop(i: int) -> None:
            body.incr("sync-path:done")

        print(f"{args.jobs:,} one-INCR jobs, {args.slots} slots, one process")
        for rnd in range(1, args.rounds + 1):
            for mode in ("loop", "threads"):
                rate, cpu, ctx = drain(mode, args.jobs, args.slots, noop, r)
                print(
                    f"round {rnd}  worker_mode={mode:8} {rate:8,.0f} jobs/s "
                    f"{cpu:6.0f} us CPU/job {ctx:6.1f} context switches/job"
                )
    finally:
        server.stop_server(settings)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
