"""steep.logs: under `steep worker`, the application's loggers are written in steep's format
with the running job's context (id, name, queue, attempt); `log_app = false` turns it off."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from steep import client
from steep.logs import JobContextFilter, _AppHandler, setup_logging
from steep.options import JobOptions

NAME = "tests.app_logging.confirm"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    setup_logging()


def test_json_worker_writes_the_jobs_own_log_lines_with_its_context(worker_cli):
    handle = client.enqueue(NAME, JobOptions(result_ttl=60), (7,), {})
    cli = worker_cli("--log-format", "json", "worker", "tests.app_logging", "--burst", "-p", "1")
    assert cli.wait(60) == 0, cli.text
    assert handle.result(timeout=5) == 7
    lines = [json.loads(line) for line in cli.output]  # every line is JSON, the job's too
    mine = [line for line in lines if line["logger"] == "shop.orders"]
    assert [(m["level"], m["msg"]) for m in mine] == [
        ("info", "order 7 confirmed"),  # INFO was dropped before
        ("warning", "order 7 is late"),  # WARNING was printed as bare text before
    ]
    for m in mine:
        assert (m["job_id"], m["job_name"], m["job_queue"], m["job_attempt"]) == (
            handle.id,
            NAME,
            "default",
            1,
        )


def test_text_worker_says_which_job_wrote_the_line(worker_cli):
    handle = client.enqueue(NAME, JobOptions(result_ttl=60), (8,), {})
    cli = worker_cli("worker", "tests.app_logging", "--burst", "-p", "1")
    assert cli.wait(60) == 0, cli.text
    line = next(x for x in cli.output if "order 8 confirmed" in x)
    assert "INFO" in line and "shop.orders: order 8 confirmed" in line
    assert f"[job {handle.id} {NAME} on default, attempt 1]" in line


def test_log_app_false_leaves_the_applications_loggers_alone(worker_cli):
    client.enqueue(NAME, JobOptions(result_ttl=60), (9,), {})
    cli = worker_cli(
        "worker", "tests.app_logging", "--burst", "-p", "1", env={"STEEP_LOG_APP": "false"}
    )
    assert cli.wait(60) == 0, cli.text
    assert "order 9 confirmed" not in cli.text  # Python's default: INFO is not shown
    assert "order 9 is late" in cli.text


def test_handlers_the_application_installed_are_kept_and_get_the_context(restore_root):
    root = logging.getLogger()
    theirs = logging.StreamHandler()
    root.handlers[:] = [theirs]
    setup_logging("INFO", "text", app=True)
    assert root.handlers == [theirs]
    assert any(isinstance(f, JobContextFilter) for f in theirs.filters)
    root.handlers[:] = []
    setup_logging("INFO", "json", app=True)
    setup_logging("INFO", "json", app=True)  # again: replaced, not stacked
    assert len(root.handlers) == 1 and isinstance(root.handlers[0], _AppHandler)


def test_logging_set_up_under_a_captured_stderr_writes_to_the_stderr_of_the_day(
    restore_root, capsys
):
    import contextlib
    import io

    from click.testing import CliRunner

    from steep.cli import main

    # `steep` run in-process sets up logging while its output is captured, and the capture
    # is closed when the command returns: later records still reach the process's stderr
    result = CliRunner().invoke(main, ["queues", "--help"])
    assert result.exit_code == 0, result.output
    logging.getLogger().handlers[:] = []  # as in a worker whose app set up none of its own
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        setup_logging("INFO", "text", app=True)  # what `steep worker` does
    captured.close()
    logging.getLogger("steep.test").warning("after the command")
    logging.getLogger("app.test").warning("the app's line")
    err = capsys.readouterr().err
    assert "after the command" in err and "the app's line" in err, err
    assert "Logging error" not in err, err
