"""One worker process started by the supervisor: forked from it, or a new interpreter.

It reports on a pipe the supervisor gave it: b"R" once it is ready (connected,
registered, about to fetch), b"W" once it has done work (its first finished jobs are
written), or b"E" and the error that stopped it before it was ready, so the supervisor
can tell a crash loop from a process killed while it worked (worker/restarts.py).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import traceback
from typing import Any

from steep.logs import setup_logging
from steep.settings import configure
from steep.worker.process import QueueSpec, WorkerProcess


def _report(config: dict[str, Any], message: bytes) -> None:
    fd = config.get("report_fd")
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, message[:4000])


def _failed(config: dict[str, Any], exc: BaseException) -> None:
    """Tell the supervisor what stopped this process (it matters only before ready)."""
    summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
    _report(config, b"E" + summary.encode("utf-8", "replace"))


def run(config: dict[str, Any]) -> int:
    """Run one worker process described by the supervisor's `config`; its exit code."""
    logs = {
        "log_level": config["log_level"],
        "log_format": config["log_format"],
        "log_app": config.get("log_app", False),
    }
    settings = configure(**logs)
    setup_logging(settings.log_level, settings.log_format, app=settings.log_app)
    for module in config["modules"]:
        importlib.import_module(module)  # a forked process has them already: no-op
    # Importing the application may configure steep (Django reads STEEP from its settings
    # when it starts): the process runs with those settings, and the supervisor's log options.
    settings = configure(**logs)
    # and again: the application may have set up its own root handlers meanwhile
    setup_logging(settings.log_level, settings.log_format, app=settings.log_app)
    process = WorkerProcess(
        [QueueSpec(name, weight) for name, weight in config["queues"]],
        config["concurrency"],
        settings=settings,
        worker_id=config["worker_id"],
        burst=config["burst"],
        max_memory_mb=config["max_memory_mb"],
        supervised=True,
        on_ready=lambda: _report(config, b"R"),
        on_worked=lambda: _report(config, b"W"),
        restarts=config.get("restarts"),
    )
    return process.run()


def run_forked(config: dict[str, Any]) -> None:
    """The body of a freshly forked worker process; never returns."""
    code = 1
    try:
        os.setsid()  # like a spawned one: a terminal's Ctrl-C reaches only the supervisor
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP):
            signal.signal(signum, signal.SIG_DFL)
        code = run(config)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        traceback.print_exc()
        _failed(config, exc)
    finally:
        _leave(code)


def _leave(code: int) -> None:
    # Every job is settled or returned to its queue by now. A thread job that
    # ignored its timeout or the shutdown deadline would keep a normal exit
    # waiting for it (the interpreter joins pool threads): leave without it.
    # (A forked process must not run the supervisor's exit handlers either.)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(config: dict[str, Any]) -> None:
    """The body of a spawned worker process (a new interpreter); never returns."""
    try:
        code = run(config)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        traceback.print_exc()
        _failed(config, exc)
        code = 1
    _leave(code)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
