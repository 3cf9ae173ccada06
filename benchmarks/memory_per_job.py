"""What a waiting job costs in server memory: `python benchmarks/memory_per_job.py`.

Starts a private embedded server, enqueues N jobs per argument size with enqueue_many (no
worker runs), and reports the growth of the server's dataset memory (`used_memory_dataset`)
per job. The figures are in docs/server.md ("Sizing").
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from steep import connection, job
from steep.server import ensure_server, stop_server
from steep.settings import Settings, configure

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000


@job(name="app.jobs.send_report")
def send_report(*args: object) -> None: ...


def _dataset(client: object) -> int:
    # the keys' memory alone: client buffers (a big enqueue_many's query) are not jobs
    return int(client.info("memory")["used_memory_dataset"])  # type: ignore[attr-defined]


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="steep-mem-", dir="/tmp"))
    settings = Settings(data_dir=data)
    try:
        configure(redis_url=f"unix://{ensure_server(settings)}")
        client = connection.get_client()
        print(f"{N:,} waiting jobs each; bytes of server memory per job")
        print(f"{'arguments':>24}  {'payload':>8}  {'per job':>8}  {'overhead':>8}")
        for label, args in [
            ("none", ()),
            ("one int", (42,)),
            ("100-byte string", ("x" * 100,)),
            ("1,000-byte string", ("x" * 1000,)),
        ]:
            client.execute_command("FLUSHDB", "SYNC")  # freed now, not in the background
            send_report.enqueue(*args)  # the queue's keys exist before the baseline
            before = _dataset(client)
            for start in range(0, N, 5000):
                send_report.enqueue_many([args] * min(5000, N - start))
            after = _dataset(client)
            per_job = (after - before) / N
            some_id = client.lindex("steep:{default}:queued", 0)
            payload = len(client.hget("steep:{default}:jobs", some_id))
            print(f"{label:>24}  {payload:>8}  {per_job:>8.0f}  {per_job - payload:>8.0f}")
    finally:
        stop_server(settings)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
