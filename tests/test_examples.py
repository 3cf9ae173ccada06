"""The examples in examples/ and the docs run as written."""

from __future__ import annotations

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
