"""An operator's cancel and interrupt of jobs running in one worker process.

A cancelled async job has its task cancelled; a cancelled thread job is asked to stop
(`ctx.cancelled`) and, if it does not within CANCEL_GRACE, has steep.Cancelled injected
into its thread; a thread that ignores even that is settled in the dead set at once and
the process recycled around it. An interrupted iterable job stops at its next step
boundary and is parked. The heartbeat thread brings these requests from the control
channel; WorkerProcess.cancel_job and interrupt_job call in here on the event loop.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from steep import hooks
from steep.errors import Cancelled
from steep.job import decode_envelope
from steep.registry import lookup_local
from steep.worker.executor import THREAD_STOP_GRACE, Outcome, Running

if TYPE_CHECKING:
    from steep.worker.process import WorkerProcess

log = logging.getLogger("steep.worker")

# How long a cancelled thread job gets to notice `ctx.cancelled` and stop by itself
# before steep.Cancelled is injected into its thread.
CANCEL_GRACE = 1.0


def cancel_job(worker: WorkerProcess, job_id: str) -> None:
    r = worker.running.get(job_id)
    if r is None:
        log.info("cancel: job %s is not running in this process", job_id)
        return
    log.warning("cancelling job %s %s at an operator's request", job_id, r.name)
    worker._cancelled[job_id] = False
    r.state.cancelled = True  # what ctx.cancelled / check_cancelled() read
    if r.call is None and r.task is not None:
        r.task.cancel()
    else:
        # a thread job that checks the flag stops by itself; others get the exception
        worker.loop.call_later(CANCEL_GRACE, _inject_cancel, worker, job_id)


def _inject_cancel(worker: WorkerProcess, job_id: str) -> None:
    r = worker.running.get(job_id)
    if r is None or worker._cancelled.get(job_id, True):
        return
    if r.call is None:
        if r.task is not None:  # a slot handed it to the event loop meanwhile
            r.task.cancel()
        return
    if r.call.interrupt(Cancelled):
        worker.loop.call_later(THREAD_STOP_GRACE, _cancel_overdue, worker, job_id)


def interrupt_job(worker: WorkerProcess, job_id: str) -> None:
    r = worker.running.get(job_id)
    if r is None:
        log.info("interrupt: job %s is not running in this process", job_id)
        return
    log.info("interrupting job %s %s at its next step boundary", job_id, r.name)
    r.state.stopping = "interrupt"


def _cancel_overdue(worker: WorkerProcess, job_id: str) -> None:
    r = worker.running.get(job_id)
    if r is None or worker._cancelled.get(job_id):
        return
    # the thread ignores the exception (stuck in C code): settle the job now and
    # recycle the process around the thread, which cannot be killed
    if r.slot is not None and not r.slot.settle_early(job_id):
        return  # its slot thread settled it a moment ago
    if worker.running.pop(job_id, None) is None:
        return
    worker._wake.set()  # a slot is free (and a shutdown waiting for its jobs hears it)
    worker._cancelled[job_id] = True
    settle_cancelled(worker, r)
    worker.request_recycle(f"cancelled job {job_id} did not stop")


def settle_cancelled(worker: WorkerProcess, r: Running) -> None:
    """Settle a cancelled job as failed with steep.Cancelled (it goes to the dead set)."""
    try:
        envelope = decode_envelope(r.payload)
    except Exception:
        envelope = None
    outcome = Outcome(
        r.queue,
        r.job_id,
        r.payload,
        envelope,
        None,
        exc=Cancelled("cancelled by an operator"),
        reason="Cancelled",
        duration=time.time() - r.started,
    )
    if envelope is not None:
        outcome.hooks = hooks.hooks_for(envelope, lookup_local(envelope.name))
    worker._settle_failure(outcome)
