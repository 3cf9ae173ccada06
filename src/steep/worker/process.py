"""One worker process: its lifecycle, and the dispatch of claimed jobs.

WorkerProcess owns the connections, the Executor (event loop or thread pool), the
Settler and the Heartbeat thread, and starts the Fetcher (worker/fetch.py) and the
periodic loops (worker/loops.py). Responsibilities, in the order a job meets them:
- start each job the Fetcher claims as a task that runs it on the Executor;
- hand its outcome to the Settler: successes in batches, failures one by one, a
  feature's own settlement, a cancelled job to the dead set (worker/control.py);
- on shutdown: stop fetching, let running jobs finish until the deadline,
  then return whatever is left to the front of its queue; quiet (no new jobs),
  recycle (exit for the supervisor to restart it) and signals.
The Heartbeat thread keeps this process visible, reaps vanished ones, and
carries remote control signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio

from steep import hooks
from steep.connection import RETRYABLE, SCRIPTS, close_async_client, make_async_client
from steep.errors import Cancelled, JobTimeout
from steep.job import decode_envelope
from steep.keys import Keys
from steep.lane import AsyncLane
from steep.lane_cluster import async_lane
from steep.registry import lookup_local
from steep.settings import Settings, get_settings
from steep.worker import control, loops
from steep.worker.control import CANCEL_GRACE
from steep.worker.executor import Executor, Outcome, Running
from steep.worker.fetch import BATCH_WINDOW, BLOCK_REPLY_GRACE, BLOCK_TIMEOUT, Fetcher
from steep.worker.heartbeat import Heartbeat
from steep.worker.metrics import MetricsRecorder
from steep.worker.platforms import check_worker_platform
from steep.worker.queues import QueueSpec, host_label, new_worker_id, parse_queues
from steep.worker.settle import Settler
from steep.worker.slots import Slots, slots_fit

__all__ = [
    # the timings are read where they are used (fetch.py, control.py): patch them there
    "BATCH_WINDOW",
    "BLOCK_REPLY_GRACE",
    "BLOCK_TIMEOUT",
    "CANCEL_GRACE",
    "EXIT_OK",
    "EXIT_RECYCLE",
    "QueueSpec",
    "WorkerProcess",
    "host_label",
    "new_worker_id",
    "parse_queues",
]

log = logging.getLogger("steep.worker")

EXIT_OK = 0
EXIT_RECYCLE = 3  # the supervisor restarts the process without counting a crash


class WorkerProcess:
    def __init__(
        self,
        queues: Sequence[QueueSpec],
        concurrency: int | None = None,
        *,
        settings: Settings | None = None,
        worker_id: str | None = None,
        burst: bool = False,
        max_memory_mb: float | None = None,
        supervised: bool = False,
        install_signals: bool = True,
        on_ready: Callable[[], None] | None = None,
        on_worked: Callable[[], None] | None = None,
        restarts: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.queues = list(queues)
        self.concurrency = concurrency or self.settings.concurrency
        self.worker_id = worker_id or new_worker_id()
        self.burst = burst
        self.max_memory_mb = max_memory_mb
        self.supervised = supervised
        # called once the process is connected, registered and about to fetch (the
        # supervisor's sign that it can work: worker/restarts.py)
        self.on_ready = on_ready
        self.on_worked = on_worked  # once, when its first finished jobs are written
        # the restarts of this process's slot, for its heartbeat record
        self.restarts = restarts
        self.install_signals = install_signals
        self.keys = Keys(self.settings.namespace)
        self.qkeys = {q.name: self.keys.queue(q.name) for q in self.queues}
        self.weighted = any(q.weight for q in self.queues)
        self.batch_floor = max(1, self.concurrency // 2)
        self.running: dict[str, Running] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()  # bookkeeping beside the jobs
        self._processed = 0  # settled on the event loop (the slots count their own)
        self.failed = 0
        self.exit_code = EXIT_OK
        # one extra thread per queue: blocked fetches on several queues can
        # each bring a job at the same moment
        self.executor = Executor(self.concurrency + len(self.queues), self.worker_id)
        # job id -> already settled? (a thread that ignores a cancel is settled early)
        self._cancelled: dict[str, bool] = {}
        self.metrics = MetricsRecorder(self.keys)
        # the features' periodic duties (cron's ticks), run by the schedule loop
        self.tickers = hooks.tickers(self.settings, self.keys)
        self.slots: Slots | None = None  # slot threads, when its jobs are plain functions

    @property
    def processed(self) -> int:
        """Jobs that succeeded in this process."""
        return self._processed + (self.slots.processed if self.slots is not None else 0)

    @property
    def _quiet(self) -> bool:
        """No new jobs are fetched (the fetcher's own flag; the heartbeat reports it)."""
        return self.fetcher.quiet

    @property
    def _block_lanes(self) -> dict[str, AsyncLane]:
        """The lanes the idle fetches block on, one per queue (for tests and debugging)."""
        return self.fetcher.lanes

    # -- control, callable from signal handlers and the heartbeat thread -----------

    def request_stop(self, reason: str = "signal") -> None:
        """First call: graceful stop. Second call: hard stop (return jobs now)."""
        if self._stop.is_set():
            if not self._hard.is_set():
                log.warning("second stop request: returning running jobs to their queues now")
                self._hard.set()
                self._wake.set()
            return
        log.info(
            "stopping (%s): no new jobs; waiting up to %.0f s for %d running",
            reason,
            self.settings.shutdown_timeout,
            len(self.running),
        )
        self.fetcher.quiet = True
        self.fetcher.unblock()
        self._stop.set()
        self._wake.set()
        # iterable jobs stop at their next step boundary and go back to their queues
        for r in list(self.running.values()):
            r.state.stopping = r.state.stopping or "shutdown"

    def request_quiet(self) -> None:
        if not self.fetcher.quiet:
            log.info("quiet: no new jobs will be fetched; %d still running", len(self.running))
        self.fetcher.quiet = True
        self.fetcher.unblock()
        self._wake.set()

    def request_recycle(self, reason: str) -> None:
        # asked again (the memory check of every heartbeat while over the limit): the
        # graceful stop is under way, and a repeat must not turn it into a hard one
        if self.exit_code == EXIT_RECYCLE:
            return
        log.warning("recycling this process: %s", reason)
        self.exit_code = EXIT_RECYCLE
        self.request_stop(reason)

    def cancel_job(self, job_id: str) -> None:
        """Stop a running job at an operator's request; it is settled in the dead set."""
        control.cancel_job(self, job_id)

    def interrupt_job(self, job_id: str) -> None:
        """An operator's interrupt: an iterable job stops at its next step and is parked."""
        control.interrupt_job(self, job_id)

    def threadsafe(self, method: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(method, *args)

    # -- main ------------------------------------------------------------------------

    def run(self) -> int:
        check_worker_platform()  # one clear sentence on Windows, not an AttributeError
        return asyncio.run(self.arun())

    async def arun(self) -> int:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hard = asyncio.Event()
        self._wake = asyncio.Event()  # something changed: a free slot, a stop, a quiet
        self.redis: redis.asyncio.Redis = make_async_client(self.settings)
        # claims and acks, the calls made per batch of jobs, go through a lean lane
        self.lane = async_lane(self.redis)
        self.settler = Settler(self.redis, self.lane, self.qkeys, self.worker_id, self.settings)
        self.settler.on_first_ack = self.on_worked
        self.executor.redis = self.redis
        self.fetcher = Fetcher(self)
        why_not = slots_fit(self)
        if not why_not:
            slots = Slots(self)
            if slots.usable():
                self.slots = slots
                slots.start()
            else:
                slots.client.close()
                why_not = "the connection class keeps no plain socket for the slots"
        self._install_signal_handlers()
        self.heartbeat = Heartbeat(self)
        self.heartbeat.start()
        log.info(
            "worker %s started: queues %s, concurrency %d%s, %s",
            self.worker_id,
            ",".join(q.name for q in self.queues),
            self.concurrency,
            " (burst)" if self.burst else "",
            f"jobs on the event loop ({why_not})" if why_not else "a thread per slot",
        )
        fetcher = asyncio.create_task(self.fetcher.run(), name="steep-fetch")
        if self.on_ready is not None:
            self.on_ready()
        acker = asyncio.create_task(self.settler.run(), name="steep-ack")
        scheduler = asyncio.create_task(loops.schedule_loop(self), name="steep-schedule")
        metrics = asyncio.create_task(loops.metrics_loop(self), name="steep-metrics")
        watchdog: asyncio.TimerHandle | None = None
        try:
            await self._stop.wait()
            # a shutdown that overruns its deadline by far says where it is stuck
            watchdog = self.loop.call_later(
                self.settings.shutdown_timeout + 10, self._report_stuck_shutdown
            )
            await self._shutdown(fetcher)
        finally:
            if self._side_tasks:
                await asyncio.wait(list(self._side_tasks), timeout=5)
            scheduler.cancel()
            metrics.cancel()
            await self.settler.close()
            await asyncio.gather(acker, scheduler, metrics, return_exceptions=True)
            if self.slots is not None:
                self.slots.abandon()  # from here on no slot writes anything
                self.slots.record_metrics()
            with contextlib.suppress(*RETRYABLE):
                await self.metrics.flush(self.redis)
            await self._return_unfinished()
            self.heartbeat.stop()
            self.executor.shutdown()
            if self.slots is not None:
                self.slots.shutdown()
            await self.lane.aclose()
            await self.fetcher.aclose()
            await self.redis.aclose()
            await close_async_client()  # the one async jobs used, if any
            self._remove_signal_handlers()
            if watchdog is not None:
                watchdog.cancel()
        log.info(
            "worker %s stopped: %d processed, %d failed",
            self.worker_id,
            self.processed,
            self.failed,
        )
        return self.exit_code

    def _report_stuck_shutdown(self) -> None:
        lines = []
        for task in asyncio.all_tasks(self.loop):
            frames = task.get_stack(limit=8)
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
            lines.append(f"  {task.get_name()}: {where}")
        log.warning("shutdown is taking long; tasks still pending:\n%s", "\n".join(lines))

    async def _shutdown(self, fetcher: asyncio.Task[None]) -> None:
        self._wake.set()
        await fetcher
        # the jobs end, each waking _wake as it goes (a task when done, a slot as it parks)
        deadline = self.loop.time() + self.settings.shutdown_timeout
        while self.running and not self._hard.is_set():
            left = deadline - self.loop.time()
            if left <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        if self.running:
            log.warning("returning %d unfinished jobs to their queues", len(self.running))
            tasks = [r.task for r in list(self.running.values()) if r.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _return_unfinished(self) -> None:
        """Everything still in this process's in-flight lists goes back to the front."""
        for qname, qk in self.qkeys.items():
            for attempt in range(20):
                try:
                    moved = await SCRIPTS.requeue.run_async(
                        self.redis,
                        [qk.inflight(self.worker_id), qk.queued, qk.state, qk.jobs, qk.prioritized],
                    )
                    if moved:
                        log.info("returned %d jobs to queue %s", moved, qname)
                    break
                except RETRYABLE as exc:
                    log.warning("cannot reach Redis to return jobs (%s); retrying", exc)
                    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))

    # -- running ---------------------------------------------------------------------

    def _start(self, qname: str, job_id: str, payload: bytes) -> None:
        if not payload:  # the claim found no envelope for the id, and dropped it
            task = self.loop.create_task(self._dropped(qname, job_id))
            # kept until done: the shutdown waits for it, so a burst worker's count is written
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)
            return
        if self.slots is not None:
            self.slots.give(qname, job_id, payload)
            return
        task = self.loop.create_task(self._run_one(qname, job_id, payload))
        self.running[job_id] = Running(qname, job_id, payload, time.time(), task)

    async def _run_delegated(self, qname: str, job_id: str, running: Running) -> None:
        """A job a slot thread hands over (worker/slots.py): run here, as in loop mode."""
        running.task = asyncio.current_task()
        running.call = None
        await self._run_one(qname, job_id, running.payload)

    async def _dropped(self, qname: str, job_id: str) -> None:
        log.warning(
            "job %s in queue %s has no envelope (deleted or settled meanwhile); dropped it",
            job_id,
            qname,
            extra={"job_id": job_id, "queue": qname, "event": "missing"},
        )
        try:
            await self.redis.hincrby(self.qkeys[qname].stats, "missing", 1)  # type: ignore[misc]
        except RETRYABLE as exc:
            log.debug("missing job %s not counted: %s", job_id, exc)

    async def _run_one(self, qname: str, job_id: str, payload: bytes) -> None:
        running = self.running[job_id]
        try:
            outcome = await self.executor.run(qname, job_id, payload, running)
        except asyncio.CancelledError:
            self.running.pop(job_id, None)
            self._wake.set()
            if job_id in self._cancelled:
                if not self._cancelled.pop(job_id):
                    control.settle_cancelled(self, running)
                return
            # shutdown: the job stays in-flight and is returned to its queue
            raise
        except Exception:
            # a bug in steep, not in the job: free the slot; the job stays in flight and
            # the stray check returns it to its queue, so it is not lost
            log.exception("internal error running job %s; it will run again", job_id)
            self.running.pop(job_id, None)
            self._wake.set()
            return
        self._finish(qname, job_id, outcome)

    def _finish(self, qname: str, job_id: str, outcome: Outcome) -> None:
        """A run has ended: free its slot and settle it (a slot thread's failures too)."""
        if self.running.pop(job_id, None) is None:
            self._cancelled.pop(job_id, None)
            return  # settled already (a cancel the thread ignored)
        self._wake.set()
        try:
            self._settle(qname, job_id, outcome)
        except Exception:
            # a bug in steep, not in the job: the job stays in flight and goes back to
            # its queue (the stray check or shutdown returns it), so it is not lost
            log.exception("internal error settling job %s; it will run again", job_id)
        if outcome.stuck:
            self.request_recycle(f"job {job_id} ignored its timeout and is still running")

    def _settle(self, qname: str, job_id: str, outcome: Outcome) -> None:
        if self._cancelled.pop(job_id, None) is not None and not outcome.ok:
            outcome.exc, outcome.reason = Cancelled("cancelled by an operator"), "Cancelled"
        if outcome.verdict is not None:
            self.settler.set_aside(outcome)
            return
        if outcome.reason and not outcome.hooks and outcome.envelope is not None:
            # it could not start (unknown name, bad arguments): the features it uses
            # (its batch, its unique lock) still hear that it died
            outcome.hooks = hooks.hooks_for(outcome.envelope, outcome.function)
        for hook in outcome.hooks:
            if hook.settles(outcome):
                self.settler.settled_by(hook, outcome)
                return
        if outcome.ok:
            self._processed += 1
            self.settler.succeeded(outcome)
        else:
            self._settle_failure(outcome)
        if outcome.envelope is not None:
            self.metrics.record(qname, outcome.envelope.name, outcome.duration, not outcome.ok)

    def _slot_stuck(self, job_id: str) -> None:
        """A slot thread's job ignored its timeout: settle it as timed out, and recycle
        the process around the thread (which cannot be killed)."""
        r = self.running.pop(job_id, None)
        if r is None:
            return
        self._wake.set()
        outcome = Outcome(r.queue, job_id, r.payload, None, None, duration=time.time() - r.started)
        with contextlib.suppress(Exception):
            outcome.envelope = decode_envelope(r.payload)
            outcome.function = lookup_local(outcome.envelope.name)
        timeout = outcome.envelope.timeout if outcome.envelope is not None else None
        outcome.exc = JobTimeout(f"{r.name} ran longer than its timeout of {timeout} s")
        self._settle(r.queue, job_id, outcome)
        self.request_recycle(f"job {job_id} ignored its timeout and is still running")

    def _settle_failure(self, outcome: Outcome) -> None:
        self.failed += 1
        self.settler.failed(outcome)

    # -- signals ---------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if not self.install_signals or threading.current_thread() is not threading.main_thread():
            return
        self.loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        self.loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        self.loop.add_signal_handler(signal.SIGTSTP, self.request_quiet)

    def _remove_signal_handlers(self) -> None:
        if not self.install_signals or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP):
            self.loop.remove_signal_handler(sig)

    # -- for the heartbeat ---------------------------------------------------------------

    def snapshot(self) -> list[tuple[str, str, float]]:
        """(queue, job id, started) of the running jobs; safe to call from another thread."""
        for _ in range(5):
            try:
                return [(r.queue, r.job_id, r.started) for r in list(self.running.values())]
            except RuntimeError:  # resized while copied
                continue
        return []
