"""The examples in examples/ and the docs run as written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_example

QUICKSTART = ROOT / "examples" / "quickstart"


def test_quickstart(client, server):
    lines = run_example(
        client, server, QUICKSTART, "enqueue.py", worker_args=("-q", "mail,default")
    )
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


@pytest.mark.parametrize(
    ("app", "tests"), [("flask_app", 3), ("fastapi_app", 2), ("django_app", 3)]
)
def test_each_example_app_runs_its_own_tests_with_the_pytest_plugin(app: str, tests: int, tmp_path):
    # as a user would, in the app's directory with nothing configured: the plugin starts a
    # private server for the session, and no Redis of the machine's is touched
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT / "examples" / app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{tests} passed" in done.stdout, done.stdout
