"""Expiring jobs: dropped unrun when no worker started them in time.

Run it (it starts a burst worker itself):   python examples/features/expiring_jobs.py
"""

from __future__ import annotations

import time

from steep import JobFailed, job
from steep.worker import WorkerProcess, parse_queues


@job(expires_in=0.5, result_ttl=60)
def send_otp(phone: str) -> str:
    return f"code sent to {phone}"


stale = send_otp.enqueue("+15550100")
time.sleep(1)  # nobody runs it for a second: past its deadline
fresh = send_otp.enqueue("+15550101")
WorkerProcess(parse_queues("default"), 2, burst=True, install_signals=False).run()

print(fresh.result(timeout=5))
try:
    stale.result(timeout=5)
except JobFailed as exc:
    print(f"stale: {exc.type}")
