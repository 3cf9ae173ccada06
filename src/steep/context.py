"""What a running job can learn about itself: `steep.current_job()`."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from steep.errors import Cancelled


class RunState:
    """What the worker and a running job tell each other while it runs.

    One per run, shared between the worker (which sets `cancelled` and
    `stopping`) and the job (which reads them). Plain attributes: a job pays an
    attribute read to look, never a round trip. Features keep their per-run state in
    `features` (progress: its last report) and leave in `cleanups` what the worker
    must do when the run ends (delete that report); both stay None for the many runs
    that use no such feature.
    """

    __slots__ = ("cancelled", "cleanups", "features", "stopping")

    def __init__(self) -> None:
        self.cancelled = False  # an operator cancelled the job
        # why the job should stop at its next step boundary: "" (it should not),
        # "shutdown" (the worker is stopping) or "interrupt" (an operator parks it)
        self.stopping = ""
        self.features: dict[str, Any] | None = None
        # coroutine functions the worker awaits with its async client once the run ends
        self.cleanups: list[Callable[[Any], Awaitable[None]]] | None = None


# The progress reporter (sync, async), set by the feature that records reports
# (steep.features.progress) when it is imported; see `JobContext.progress`.
ProgressReporter = tuple[
    Callable[["JobContext", float, str], None],
    Callable[["JobContext", float, str], Awaitable[None]],
]
_progress_reporter: ProgressReporter | None = None


def set_progress_reporter(reporter: ProgressReporter) -> None:
    global _progress_reporter
    _progress_reporter = reporter


def _reporter() -> ProgressReporter:
    if _progress_reporter is None:
        raise RuntimeError("progress reports need steep.features.progress (import steep)")
    return _progress_reporter


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
        _reporter()[0](self, fraction, message)

    async def aprogress(self, fraction: float, message: str = "") -> None:
        """`progress` for async jobs: the write does not block the event loop."""
        await _reporter()[1](self, fraction, message)


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "steep_current_job", default=None
)


def current_job() -> JobContext | None:
    """The job being run by this thread or task, or None outside a job."""
    return _current.get()
