"""The examples in examples/ and the docs run as written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.conftest import ROOT, wait_for

QUICKSTART = ROOT / "examples" / "quickstart"


def test_quickstart(client, server):
    env = {**os.environ, "STEEP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT / "src")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "steep", "worker", "app.jobs", "-q", "mail,default", "-p", "1"],
        cwd=QUICKSTART,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: client.zcard("steep:workers") == 1, message="the worker")
        out = subprocess.run(
            [sys.executable, "enqueue.py"],
            cwd=QUICKSTART,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[:7] == [
            "report for user 42",
            "mail to ada@example.com: Your report",
            "INV-7: 12.50 due 2026-12-31",
            "delivered to https://hooks.example/ping on attempt 2",
            "report for user 43",
            "report for user 100",
            "report for user 101",
        ]
        assert lines[7] == "scheduled job status now: succeeded"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
