"""The pipeline walk-through of docs/pipeline.md, run as written: examples/pipeline/run.sh
makes an origin, starts `steep pipeline server` (embedded Valkey, polling), pushes, and
follows the run to its verdict."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port


@pytest.mark.slow
def test_the_walk_through_builds_the_pushed_commit():
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEEP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PORT"] = str(free_port())
    done = subprocess.run(
        [str(ROOT / "examples" / "pipeline" / "run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "tests | OK" in out and "doctests | 1 passed and 0 failed." in out
    # the run of the pushed commit (the first build of a new project may come before it)
    assert re.search(r"^run shop-\d passed$", done.stderr, re.M), done.stderr
    assert "A comment on shipping" in out
