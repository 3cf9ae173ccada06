"""`steep pipeline demo` as the README's demo command plays it: real git, the real CI
server and workers, two real app processes, and the flow from a pull request to
production, a failing test and a failing health check."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest


@pytest.mark.slow
def test_the_demo_plays_the_flow_and_leaves_nothing_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEEP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "steep", "pipeline", "demo", "--no-wait", "--keep"],
        cwd=tmp_path,
        env={**env, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "staging and production: both answer Shop v1" in out
    assert re.search(r"staging deploys v2: checked; \d+ of \d+ requests failed", out), out
    assert re.search(r"production deploys v2: tree [0-9a-f]{12}, the one staging checked", out)
    assert "tests fail on staging: step 'tests' failed" in out and "nothing deployed" in out
    assert re.search(r"health check fails on v3: rolled back to \S+ in [\d.]+ s", out), out
    # both apps answered the version they should when the demo ended
    assert re.search(r"staging +http://127\.0\.0\.1:\d+/ answers 200: Shop v2 \(staging\)", out)
    assert re.search(
        r"production +http://127\.0\.0\.1:\d+/ answers 200: Shop v2 \(production\)", out
    )
    # and it stopped what it started: the apps, the CI server, its workers and Valkey
    (root,) = tmp_path.glob("steep-demo-*")
    left = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            where = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
            if str(root) in where:
                left.append(f"{process.pid}: {where}")
    assert not left, left
