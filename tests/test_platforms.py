"""Where workers run. Windows cannot run here, so it is stood in for by the platform name
(`sys.platform`) the check reads: what is tested is the sentence a Windows user gets, and that
the worker refuses before it touches a signal."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from steep.cli import main
from steep.worker import PlatformNotSupported, WorkerProcess, check_worker_platform, parse_queues

SENTENCE = "steep workers need Linux or macOS"


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_workers_run_on_linux_and_macos(platform: str) -> None:
    check_worker_platform(platform)  # no error


def test_windows_gets_one_sentence_saying_what_runs_where(monkeypatch) -> None:
    with pytest.raises(PlatformNotSupported) as caught:
        check_worker_platform("win32")
    message = str(caught.value)
    assert message.startswith(SENTENCE) and "this is Windows" in message
    assert "the client side (enqueueing, results, the dashboard" in message
    assert "WSL" in message
    # the CLI and an in-process worker refuse with it, before any signal handler
    monkeypatch.setattr(sys, "platform", "win32")
    result = CliRunner().invoke(main, ["worker", "tests.jobs", "--burst"])
    assert result.exit_code != 0
    assert SENTENCE in result.output and "Traceback" not in result.output
    with pytest.raises(PlatformNotSupported, match=SENTENCE):
        WorkerProcess(parse_queues("default"), 1, burst=True, install_signals=False).run()
