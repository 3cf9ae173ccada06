"""Entry point of one worker process started by the supervisor."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

from steep.logs import setup_logging
from steep.settings import configure
from steep.worker.process import QueueSpec, WorkerProcess


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    logs = {"log_level": config["log_level"], "log_format": config["log_format"]}
    settings = configure(**logs)
    setup_logging(settings.log_level, settings.log_format)
    for module in config["modules"]:
        importlib.import_module(module)
    # Importing the application may configure steep (Django reads STEEP from its settings
    # when it starts): the process runs with those settings, and the supervisor's log options.
    settings = configure(**logs)
    process = WorkerProcess(
        [QueueSpec(name, weight) for name, weight in config["queues"]],
        config["concurrency"],
        settings=settings,
        worker_id=config["worker_id"],
        burst=config["burst"],
        max_memory_mb=config["max_memory_mb"],
        supervised=True,
    )
    return process.run()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Every job is settled or returned to its queue by now. A thread job that
    # ignored its timeout or the shutdown deadline would keep a normal exit
    # waiting for it (the interpreter joins pool threads): leave without it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
