"""Performance smoke: a few thousand jobs through steep alone, failing only on a gross
regression against the figures recorded in docs/benchmarks.md.

    python benchmarks/smoke.py            # exit 1 if a rate is below a quarter of the record

It starts its own private Valkey (the pip-installed binary, no persistence), measures
single-call and bulk enqueue rates and the drain rates of one `steep worker` (2 processes x 10)
for async jobs and for plain `def` jobs (run in threads: the equal-terms steep-sync-p2 row of the
full run), and compares each with the record line
`<!-- smoke-record: ... -->` in docs/benchmarks.md. The full comparison with the peers is
`python benchmarks/run.py`; this only guards the hot path against being slowed by accident.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "docs" / "benchmarks.md"
# A run on a slower or busier machine is fine; only a fall below this share of the
# record fails (a hot path made several times slower, not noise).
FLOOR = 0.25

# one module per drain: a worker that imports only plain functions runs them on its slot
# threads, as an application with only `def` jobs would
_HEAD = """
import redis, os
from steep import job

_r = redis.Redis.from_url(os.environ["STEEP_REDIS_URL"])
"""
JOBS = {
    "smoke_jobs": _HEAD
    + """
@job(queue="smoke")
async def noop(i: int) -> None:
    _r.incr("smoke:done")
""",
    "smoke_sync_jobs": _HEAD
    + """
@job(queue="smoke-sync")
def noop_sync(i: int) -> None:
    _r.incr("smoke:sync:done")
""",
}


def recorded() -> dict[str, float]:
    match = re.search(r"<!-- smoke-record: (.*?) -->", RECORD.read_text())
    if not match:
        raise SystemExit(f"no '<!-- smoke-record: ... -->' line in {RECORD}")
    return {k: float(v) for k, v in (item.split("=") for item in match[1].split())}


def measure(n: int, workdir: Path) -> dict[str, float]:
    from steep import connection, server
    from steep.settings import Settings, configure

    data = workdir / "valkey"
    settings = Settings(data_dir=data, fsync="no")
    socket_path = server.ensure_server(settings)
    url = f"unix://{socket_path}"
    os.environ["STEEP_REDIS_URL"] = url
    try:
        configure(redis_url=url)
        connection.reset_clients()
        for module, source in JOBS.items():
            (workdir / f"{module}.py").write_text(source)
        sys.path.insert(0, str(workdir))
        import smoke_jobs  # type: ignore[import-not-found]
        import smoke_sync_jobs  # type: ignore[import-not-found]

        r = connection.get_client()
        r.flushall()
        started = time.perf_counter()
        for i in range(n // 2):
            smoke_jobs.noop.enqueue(i)
        single = (n // 2) / (time.perf_counter() - started)
        # bulk: batches of 1000 as in the full run, best of three (one short burst is at the
        # mercy of a busy machine), into a queue no worker reads
        spare = smoke_jobs.noop.options(queue="smoke-bulk")
        bulk = 0.0
        for _ in range(3):
            started = time.perf_counter()
            for first in range(n // 2, n, 1000):
                spare.enqueue_many([(i,) for i in range(first, min(first + 1000, n))])
            bulk = max(bulk, (n - n // 2) / (time.perf_counter() - started))
        smoke_jobs.noop.enqueue_many([(i,) for i in range(n // 2, n)])  # the drain's other half

        sync_job = smoke_sync_jobs.noop_sync
        for first in range(0, n, 1000):
            sync_job.enqueue_many([(i,) for i in range(first, min(first + 1000, n))])
        drain = _drain(workdir, url, r, "smoke_jobs", "smoke", "smoke:done", n)
        drain_sync = _drain(workdir, url, r, "smoke_sync_jobs", "smoke-sync", "smoke:sync:done", n)
        return {"enqueue": single, "bulk": bulk, "drain": drain, "drain_sync": drain_sync}
    finally:
        server.stop_server(settings)


def _drain(workdir: Path, url: str, r: Any, module: str, queue: str, counter: str, n: int) -> float:
    """Jobs/s of one `steep worker <module> -p 2 -c 10` on `queue`, from its start command
    until `counter` reaches n."""
    env = {**os.environ, "PYTHONPATH": str(workdir), "STEEP_REDIS_URL": url}
    cmd = [sys.executable, "-m", "steep", "--log-level", "warning", "worker", module]
    worker = subprocess.Popen([*cmd, "-q", queue, "-p", "2", "-c", "10"], env=env)
    try:
        started = time.perf_counter()
        deadline = started + 300
        while int(r.get(counter) or 0) < n:
            if time.perf_counter() > deadline or worker.poll() is not None:
                raise SystemExit(f"{queue} drain incomplete: {r.get(counter)} of {n} jobs ran")
            time.sleep(0.005)
        return n / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    args = parser.parse_args()
    record = recorded()
    workdir = Path(tempfile.mkdtemp(prefix="steep-smoke-"))
    try:
        got = measure(args.jobs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = False
    for key, value in got.items():
        floor = record[key] * FLOOR
        verdict = "ok" if value >= floor else "TOO SLOW"
        failed |= value < floor
        print(
            f"{key:8} {value:9,.0f} jobs/s   record {record[key]:9,.0f}   "
            f"floor {floor:9,.0f}   {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
