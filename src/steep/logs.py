"""Logging setup: readable lines for people, `--log-format json` for log shippers."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from steep.context import current_job

# Attributes every LogRecord has; anything else was passed with `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(process)d] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        ms = int(record.msecs)
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)) + f".{ms:03d}"


class JobContextFilter(logging.Filter):
    """Puts the running job's context on the records of the application's loggers:
    `job_id`, `job_name`, `job_queue`, `job_attempt` (what a record already has is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = current_job()
        if job is not None:
            fields = {
                "job_id": job.id,
                "job_name": job.name,
                "job_queue": job.queue,
                "job_attempt": job.attempt,
            }
            for key, value in fields.items():
                record.__dict__.setdefault(key, value)
        return True


class AppTextFormatter(TextFormatter):
    """steep's text lines for the application's records: the logger's name, and the job."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        head, sep, rest = line.partition("] ")
        line = f"{head}{sep}{record.name}: {rest}"
        if "job_id" in record.__dict__:
            attempt = record.__dict__.get("job_attempt")
            line += (
                f" [job {record.__dict__['job_id']} {record.__dict__.get('job_name')} on "
                f"{record.__dict__.get('job_queue')}, attempt {attempt}]"
            )
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record comes, as logging's last resort does.
    A handler bound to the stream of its day writes to a closed file once that stream is
    swapped out and closed (a command run in-process with its output captured, then done),
    and every later record of the process, a worker's among them, is lost."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr


class _AppHandler(_StderrHandler):
    """The root logger's handler that steep installed (replaced, not stacked, on a redo)."""


def setup_logging(level: str = "INFO", fmt: str = "text", *, app: bool = False) -> None:
    """steep's own logger to stderr in `fmt`; with `app` (what `steep worker` does unless
    `log_app = false`), the root logger too, so that a job's
    `logging.getLogger(__name__).info(...)` is written in the same format, with the job's
    context, instead of being dropped (INFO) or printed bare (WARNING). When the application
    has given the root logger handlers of its own, they are kept and get the job's context."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("steep")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    if app:
        app_handler = _AppHandler()
        app_handler.setFormatter(JsonFormatter() if fmt == "json" else AppTextFormatter())
        app_handler.addFilter(JobContextFilter())
        top = logging.getLogger()
        theirs = [h for h in top.handlers if not isinstance(h, _AppHandler)]
        if theirs:
            # the application set up its own handlers: keep its format, add the job's context
            top.handlers[:] = theirs
            for h in theirs:
                if not any(isinstance(f, JobContextFilter) for f in h.filters):
                    h.addFilter(JobContextFilter())
            return
        top.handlers[:] = [app_handler]
        top.setLevel(level.upper())
