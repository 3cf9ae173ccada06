"""What a running job can learn about itself: `steep.current_job()`."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any, NamedTuple


class JobContext(NamedTuple):
    """Made for every run of every job: a tuple is the cheapest immutable record."""

    id: str
    name: str
    queue: str
    attempt: int  # 1 on the first run, 2 on the first retry...
    worker_id: str
    meta: Mapping[str, Any] = {}  # what enqueue middleware stored in the envelope


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "steep_current_job", default=None
)


def current_job() -> JobContext | None:
    """The job being run by this thread or task, or None outside a job."""
    return _current.get()
