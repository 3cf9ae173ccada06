"""What a running job can learn about itself: `steep.current_job()`."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any, NamedTuple

from steep.errors import Cancelled


class RunState:
    """What the worker and a running job tell each other while it runs.

    One per run, shared between the worker (which sets `cancelled` and
    `stopping`) and the job (which reads them, and reports progress). Plain
    attributes: a job pays an attribute read to look, never a round trip.
    """

    __slots__ = ("cancelled", "progress_at", "progress_pending", "progress_sent", "stopping")

    def __init__(self) -> None:
        self.cancelled = False  # an operator cancelled the job
        # why the job should stop at its next step boundary: "" (it should not),
        # "shutdown" (the worker is stopping) or "interrupt" (an operator parks it)
        self.stopping = ""
        self.progress_at = 0.0  # monotonic time of the last progress write
        self.progress_sent: tuple[float, str] | None = None  # last written report
        self.progress_pending: tuple[float, str] | None = None  # throttled, not yet written


class JobContext(NamedTuple):
    """Made for every run of every job: a tuple is the cheapest immutable record."""

    id: str
    name: str
    queue: str
    attempt: int  # 1 on the first run, 2 on the first retry...
    worker_id: str
    meta: Mapping[str, Any] = {}  # what enqueue middleware stored in the envelope
    run: RunState | None = None  # set by the worker; None for a context made by hand

    @property
    def cancelled(self) -> bool:
        """True once an operator has cancelled this job (a shutdown is not a cancel)."""
        return self.run is not None and self.run.cancelled

    def check_cancelled(self) -> None:
        """Raise `steep.Cancelled` if an operator has cancelled this job."""
        if self.run is not None and self.run.cancelled:
            raise Cancelled("cancelled by an operator")

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job is (0.0 to 1.0) and what it is doing; see docs/progress.md.

        Writes through at most every 0.25 s unless the message changes or the fraction
        reaches 1; from an async job prefer `await aprogress(...)`.
        """
        from steep.features.progress import report

        report(self, fraction, message)

    async def aprogress(self, fraction: float, message: str = "") -> None:
        """`progress` for async jobs: the write does not block the event loop."""
        from steep.features.progress import areport

        await areport(self, fraction, message)


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "steep_current_job", default=None
)


def current_job() -> JobContext | None:
    """The job being run by this thread or task, or None outside a job."""
    return _current.get()
