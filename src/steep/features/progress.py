"""Progress reports from running jobs: `current_job().progress(0.4, "step 2")`.

A report is one small JSON string per running job, in its queue's slot
(`<ns>:{<queue>}:progress:<id>`, see keys.py), written by the job itself with a
TTL and deleted by the worker when the run ends, so operators only ever see
reports of jobs that run now (the TTL covers a worker killed mid-run).

Reporting must not slow the job down: a report is written through at once
when its message differs from the last one written or its fraction reaches
1, otherwise at most every THROTTLE seconds; a report held back is written by
the next one due (or with an iterable job's next cursor save). A report that
cannot be written (Redis unreachable) is dropped with a warning: progress is
never a reason for a job to fail.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from steep import context
from steep.connection import RETRYABLE, get_async_client, get_client, get_keys
from steep.job import decode, encode

if TYPE_CHECKING:
    from steep.context import JobContext, RunState

log = logging.getLogger("steep.worker")

THROTTLE = 0.25  # seconds between two writes of reports with the same message
TTL = 3600  # seconds a report outlives a worker that died without deleting it


def _checked(fraction: float, message: str) -> float:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or math.isnan(fraction)
        or not 0.0 <= fraction <= 1.0
    ):
        raise ValueError(f"progress fraction must be a number from 0.0 to 1.0, got {fraction!r}")
    if not isinstance(message, str):
        raise TypeError(f"progress message must be a str, got {type(message).__name__}")
    return float(fraction)


class _Reports:
    """One run's reports: the last one written, and the one held back by the throttle."""

    __slots__ = ("at", "pending", "sent")

    def __init__(self) -> None:
        self.at = 0.0  # monotonic time of the last write
        self.sent: tuple[float, str] | None = None
        self.pending: tuple[float, str] | None = None


def _reports(run: RunState) -> _Reports:
    if run.features is None:
        run.features = {}
    reports = run.features.get("progress")
    if reports is None:
        reports = run.features["progress"] = _Reports()
    return reports


def _due(run: RunState, fraction: float, message: str) -> bool:
    """Write this report now? If not, keep it as the pending one."""
    reports = _reports(run)
    sent = reports.sent
    if (
        sent is None
        or fraction >= 1.0
        or sent[1] != message
        or time.monotonic() - reports.at >= THROTTLE
    ):
        return True
    reports.pending = (fraction, message)
    return False


def _sent(ctx: JobContext, run: RunState, fraction: float, message: str) -> None:
    reports = _reports(run)
    if reports.sent is None:
        # the first report written: the worker deletes it when the run ends
        queue, job_id = ctx.queue, ctx.id

        async def cleanup(redis: Any) -> None:
            await clear(redis, queue, job_id)

        if run.cleanups is None:
            run.cleanups = []
        run.cleanups.append(cleanup)
    reports.sent = (fraction, message)
    reports.pending = None
    reports.at = time.monotonic()


def record(fraction: float, message: str) -> bytes:
    return encode({"fraction": round(fraction, 4), "message": message, "at": time.time()})


def report(ctx: JobContext, fraction: float, message: str = "") -> None:
    """Sync report (a thread job); a no-op outside a worker."""
    fraction = _checked(fraction, message)
    run = ctx.run
    if run is None or not _due(run, fraction, message):
        return
    try:
        get_client().set(
            get_keys().queue(ctx.queue).progress(ctx.id), record(fraction, message), ex=TTL
        )
    except RETRYABLE as exc:
        log.warning("progress of job %s not recorded: %s", ctx.id, exc)
        return
    _sent(ctx, run, fraction, message)


async def areport(ctx: JobContext, fraction: float, message: str = "") -> None:
    """Async report (an async job); a no-op outside a worker."""
    fraction = _checked(fraction, message)
    run = ctx.run
    if run is None or not _due(run, fraction, message):
        return
    try:
        await get_async_client().set(
            get_keys().queue(ctx.queue).progress(ctx.id), record(fraction, message), ex=TTL
        )
    except RETRYABLE as exc:
        log.warning("progress of job %s not recorded: %s", ctx.id, exc)
        return
    _sent(ctx, run, fraction, message)


def add_pending(pipe: Any, ctx: JobContext) -> None:
    """Queue the held-back report, if any, on a pipeline the caller sends anyway."""
    run = ctx.run
    if run is None or run.features is None or "progress" not in run.features:
        return
    pending = _reports(run).pending
    if pending is None:
        return
    fraction, message = pending
    pipe.set(get_keys().queue(ctx.queue).progress(ctx.id), record(fraction, message), ex=TTL)
    _sent(ctx, run, fraction, message)


async def clear(redis: Any, queue: str, job_id: str) -> None:
    """Delete a finished run's report (a cleanup of the runs that reported)."""
    try:
        await redis.delete(get_keys().queue(queue).progress(job_id))
    except RETRYABLE as exc:  # its TTL removes it later
        log.debug("progress of job %s left to expire: %s", job_id, exc)


def parse(raw: bytes | None) -> dict[str, Any] | None:
    """A stored report as {"fraction", "message", "at"}, or None."""
    if raw is None:
        return None
    try:
        data = decode(raw)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


context.set_progress_reporter((report, areport))
