"""examples/cron runs as docs/cron.md says: the worker publishes and ticks its entries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from tests.conftest import ROOT, wait_for

EXAMPLE = ROOT / "examples" / "cron"


def test_cron_example(client, server):
    env = {**os.environ, "STEEP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT / "src")}
    env.pop("STEEP_CONFIG", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "steep", "worker", "app.jobs", "-p", "1", "-c", "2"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert worker.stdout is not None
        with worker.stdout:
            lines.extend(x.decode() for x in worker.stdout)

    reader = threading.Thread(target=read)
    reader.start()

    def steep(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "steep", *args],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        wait_for(lambda: len(json.loads(steep("cron", "list", "--json"))) == 3, timeout=30)
        entries = {e["name"]: e for e in json.loads(steep("cron", "list", "--json"))}
        assert set(entries) == {"app.jobs.nightly_report", "cleanup", "pulse"}
        assert entries["cleanup"]["queue"] == "low" and entries["cleanup"]["missed"] == "skip"
        assert entries["app.jobs.nightly_report"]["timezone"] == "Europe/Berlin"
        wait_for(lambda: any("pulse at " in line for line in lines), timeout=15)
        assert "enqueued" in steep("cron", "trigger", "app.jobs.nightly_report")
        wait_for(lambda: any("triggered by hand" in line for line in lines), timeout=15)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        reader.join(5)
