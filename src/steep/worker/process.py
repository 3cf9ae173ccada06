"""One worker process: fetch jobs, run them, settle them.

Responsibilities, in the order a job meets them:
- claim jobs from the queues in priority order into this process's own
  in-flight lists (one Lua call per queue per batch), or block on the queues
  when they are empty so a lone job starts at once;
- hand each job to the Executor (event loop or thread pool);
- settle successes in batches (one Lua call per queue for everything that
  finished while the previous batch was on the wire) and failures one by one;
- on shutdown: stop fetching, let running jobs finish until the deadline,
  then return whatever is left to the front of its queue.
The Heartbeat thread keeps this process visible, reaps vanished ones, and
carries remote control signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError

from steep import hooks
from steep.connection import RETRYABLE, SCRIPTS, close_async_client, make_async_client
from steep.errors import Cancelled
from steep.job import decode_envelope
from steep.keys import Keys
from steep.lane import AsyncLane, reply_error
from steep.registry import lookup_local
from steep.settings import Settings, get_settings
from steep.worker.executor import THREAD_STOP_GRACE, Executor, Outcome, Running
from steep.worker.heartbeat import Heartbeat
from steep.worker.metrics import MetricsRecorder
from steep.worker.scheduler import promote_due
from steep.worker.settle import Settler

log = logging.getLogger("steep.worker")

EXIT_OK = 0
EXIT_RECYCLE = 3  # the supervisor restarts the process without counting a crash

# How long a busy worker may wait for more free slots before it claims, so that
# jobs finishing one by one are replaced in batches (see _fetch_loop).
BATCH_WINDOW = 0.002

# How long a cancelled thread job gets to notice `ctx.cancelled` and stop by itself
# before steep.Cancelled is injected into its thread.
CANCEL_GRACE = 1.0

# How long an idle worker blocks on a queue before looking again (pause
# changes and shutdown are noticed at least this often).
BLOCK_TIMEOUT = 1.0
# How long past BLOCK_TIMEOUT a blocking fetch waits for its reply before it gives the
# connection up as dead (a frozen server, a network that drops packets silently).
BLOCK_REPLY_GRACE = 10.0


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    weight: int = 0  # 0 everywhere = strict order


def parse_queues(text: str | Sequence[str]) -> list[QueueSpec]:
    """`critical,default,low` (strict) or `critical:5,default:2` (weighted)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    specs: list[QueueSpec] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, _, weight = item.partition(":")
        if weight and not weight.isdigit():
            raise ValueError(f"queue weight must be a whole number: {item!r}")
        specs.append(QueueSpec(name, int(weight or 0)))
    if not specs:
        raise ValueError("no queues given")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"a queue is listed twice: {','.join(names)}")
    return specs


def host_label() -> str:
    return socket.gethostname().split(".")[0].replace(" ", "-") or "host"


def new_worker_id() -> str:
    """Unique per process: host, pid and a random part (pids are reused)."""
    return f"{host_label()}-{os.getpid()}-{os.urandom(3).hex()}"


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
    ) -> None:
        self.settings = settings or get_settings()
        self.queues = list(queues)
        self.concurrency = concurrency or self.settings.concurrency
        self.worker_id = worker_id or new_worker_id()
        self.burst = burst
        self.max_memory_mb = max_memory_mb
        self.supervised = supervised
        self.install_signals = install_signals
        self.keys = Keys(self.settings.namespace)
        self.qkeys = {q.name: self.keys.queue(q.name) for q in self.queues}
        self.weighted = any(q.weight for q in self.queues)
        self.batch_floor = max(1, self.concurrency // 2)
        self.running: dict[str, Running] = {}
        self.processed = 0
        self.failed = 0
        self.exit_code = EXIT_OK
        # one extra thread per queue: blocked fetches on several queues can
        # each bring a job at the same moment
        self.executor = Executor(self.concurrency + len(self.queues), self.worker_id)
        self._blockers: dict[str, asyncio.Task[bytes | None]] = {}
        self._block_lanes: dict[str, AsyncLane] = {}
        # job id -> already settled? (a thread that ignores a cancel is settled early)
        self._cancelled: dict[str, bool] = {}
        self.metrics = MetricsRecorder(self.keys)
        # the features' periodic duties (cron's ticks), run by the schedule loop
        self.tickers = hooks.tickers(self.settings, self.keys)

    # -- control, callable from signal handlers and the heartbeat thread -----------

    def request_stop(self, reason: str = "signal") -> None:
        """First call: graceful stop. Second call: hard stop (return jobs now)."""
        if self._stop.is_set():
            if not self._hard.is_set():
                log.warning("second stop request: returning running jobs to their queues now")
                self._hard.set()
            return
        log.info(
            "stopping (%s): no new jobs; waiting up to %.0f s for %d running",
            reason,
            self.settings.shutdown_timeout,
            len(self.running),
        )
        self._quiet = True
        self._stop.set()
        self._wake.set()
        # iterable jobs stop at their next step boundary and go back to their queues
        for r in list(self.running.values()):
            r.state.stopping = r.state.stopping or "shutdown"

    def request_quiet(self) -> None:
        if not self._quiet:
            log.info("quiet: no new jobs will be fetched; %d still running", len(self.running))
        self._quiet = True
        self._wake.set()

    def request_recycle(self, reason: str) -> None:
        if self.exit_code != EXIT_RECYCLE:
            log.warning("recycling this process: %s", reason)
        self.exit_code = EXIT_RECYCLE
        self.request_stop(reason)

    def cancel_job(self, job_id: str) -> None:
        """Stop a running job at an operator's request; it is settled in the dead set."""
        r = self.running.get(job_id)
        if r is None:
            log.info("cancel: job %s is not running in this process", job_id)
            return
        log.warning("cancelling job %s %s at an operator's request", job_id, r.name)
        self._cancelled[job_id] = False
        r.state.cancelled = True  # what ctx.cancelled / check_cancelled() read
        if r.call is None:
            r.task.cancel()
        else:
            # a thread job that checks the flag stops by itself; others get the exception
            self.loop.call_later(CANCEL_GRACE, self._inject_cancel, job_id)

    def _inject_cancel(self, job_id: str) -> None:
        r = self.running.get(job_id)
        if r is None or self._cancelled.get(job_id, True) or r.call is None:
            return
        if r.call.interrupt(Cancelled):
            self.loop.call_later(THREAD_STOP_GRACE, self._cancel_overdue, job_id)

    def interrupt_job(self, job_id: str) -> None:
        """An operator's interrupt: an iterable job stops at its next step and is parked."""
        r = self.running.get(job_id)
        if r is None:
            log.info("interrupt: job %s is not running in this process", job_id)
            return
        log.info("interrupting job %s %s at its next step boundary", job_id, r.name)
        r.state.stopping = "interrupt"

    def _cancel_overdue(self, job_id: str) -> None:
        r = self.running.get(job_id)
        if r is None or self._cancelled.get(job_id):
            return
        # the thread ignores the exception (stuck in C code): settle the job now and
        # recycle the process around the thread, which cannot be killed
        self.running.pop(job_id)
        self._cancelled[job_id] = True
        self._settle_cancelled(r)
        self.request_recycle(f"cancelled job {job_id} did not stop")

    def _settle_cancelled(self, r: Running) -> None:
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
        self._settle_failure(outcome)

    def threadsafe(self, method: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(method, *args)

    # -- main ------------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self.arun())

    async def arun(self) -> int:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hard = asyncio.Event()
        self._wake = asyncio.Event()  # something changed: a free slot, a stop, a quiet
        self._quiet = False
        self.redis: redis.asyncio.Redis = make_async_client(self.settings)
        # claims and acks, the calls made per batch of jobs, go through a lean lane
        self.lane = AsyncLane(self.redis)
        self.settler = Settler(self.redis, self.lane, self.qkeys, self.worker_id, self.settings)
        self.executor.redis = self.redis
        self._install_signal_handlers()
        self.heartbeat = Heartbeat(self)
        self.heartbeat.start()
        log.info(
            "worker %s started: queues %s, concurrency %d%s",
            self.worker_id,
            ",".join(q.name for q in self.queues),
            self.concurrency,
            " (burst)" if self.burst else "",
        )
        fetcher = asyncio.create_task(self._fetch_loop(), name="steep-fetch")
        acker = asyncio.create_task(self.settler.run(), name="steep-ack")
        scheduler = asyncio.create_task(self._schedule_loop(), name="steep-schedule")
        metrics = asyncio.create_task(self._metrics_loop(), name="steep-metrics")
        watchdog: asyncio.TimerHandle | None = None
        try:
            await self._stop.wait()
            # a shutdown that overruns its deadline by far says where it is stuck
            watchdog = self.loop.call_later(
                self.settings.shutdown_timeout + 10, self._report_stuck_shutdown
            )
            await self._shutdown(fetcher)
        finally:
            scheduler.cancel()
            metrics.cancel()
            await self.settler.close()
            await asyncio.gather(acker, scheduler, metrics, return_exceptions=True)
            with contextlib.suppress(*RETRYABLE):
                await self.metrics.flush(self.redis)
            await self._return_unfinished()
            self.heartbeat.stop()
            self.executor.shutdown()
            await self.lane.aclose()
            for lane in self._block_lanes.values():
                await lane.aclose()
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
        if self.running and not self._hard.is_set():
            jobs = asyncio.ensure_future(asyncio.wait([r.task for r in self.running.values()]))
            hard = asyncio.ensure_future(self._hard.wait())
            await asyncio.wait(
                [jobs, hard],
                timeout=self.settings.shutdown_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            jobs.cancel()
            hard.cancel()
        if self.running:
            log.warning("returning %d unfinished jobs to their queues", len(self.running))
            for r in list(self.running.values()):
                r.task.cancel()
            await asyncio.gather(*(r.task for r in self.running.values()), return_exceptions=True)

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

    # -- fetching --------------------------------------------------------------------

    def _queue_order(self) -> list[str]:
        if not self.weighted:
            return [q.name for q in self.queues]
        # weighted: a random order in which heavier queues tend to come first
        pool = [(q.name, max(q.weight, 1)) for q in self.queues]
        order: list[str] = []
        while pool:
            total = sum(w for _, w in pool)
            pick = random.uniform(0, total)
            for i, (name, weight) in enumerate(pool):
                pick -= weight
                if pick <= 0:
                    order.append(name)
                    pool.pop(i)
                    break
            else:
                order.append(pool.pop()[0])
        return order

    def _free_slots(self) -> int:
        return self.concurrency - len(self.running)

    async def _fetch_loop(self) -> None:
        backoff = 0.05
        gather_until = 0.0
        while not self._quiet:
            try:
                free = self._free_slots()
                if free <= 0:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if free < self.batch_floor and self.running:
                    # A few slots are free while other jobs still run: wait up to
                    # BATCH_WINDOW for more to free up, so that one claim brings many
                    # jobs instead of one round trip per finished job. An idle worker
                    # (nothing running) claims at once: a lone job never waits.
                    now = self.loop.time()
                    if not gather_until:
                        gather_until = now + BATCH_WINDOW
                        self.loop.call_at(gather_until, self._wake.set)
                    if now < gather_until:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                gather_until = 0.0
                if await self._claim(free):
                    backoff = 0.05
                    continue
                if self.burst:
                    if await self._burst_done():
                        self.request_stop("burst finished")
                        break
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 0.02)
                    continue
                await self._block()
                backoff = 0.05
            except RETRYABLE as exc:
                log.warning("lost connection to Redis (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        await self._drain_blockers()

    def _marker(self) -> str:
        return f"running {self.worker_id} {int(time.time() * 1000)}"

    async def _claim(self, free: int) -> int:
        """Take up to `free` jobs, strictly in queue order; returns how many."""
        taken = 0
        for qname in self._queue_order():
            if free - taken <= 0 or self._quiet:
                break
            taken += await self._claim_from(qname, free - taken)
        return taken

    async def _claim_from(self, qname: str, want: int) -> int:
        qk = self.qkeys[qname]
        argv: list[Any] = [want, self._marker()]
        inflight = qk.inflight(self.worker_id)
        keys = [qk.queued, inflight, qk.jobs, qk.state, qk.paused, qk.prioritized]
        items = await self.lane.run(SCRIPTS.claim, keys, argv)
        for i in range(0, len(items), 2):
            self._start(qname, items[i].decode(), items[i + 1])
        return len(items) // 2

    async def _block(self) -> None:
        """Wait on every queue at once until one has a job (or a wake-up)."""
        for q in self.queues:
            if q.name not in self._blockers:
                self._blockers[q.name] = asyncio.create_task(self._block_on(q.name))
        self._wake.clear()
        waker = asyncio.create_task(self._wake.wait())
        done, _ = await asyncio.wait(
            [*self._blockers.values(), waker], return_when=asyncio.FIRST_COMPLETED
        )
        waker.cancel()
        for qname, task in list(self._blockers.items()):
            if task in done:
                del self._blockers[qname]
                items = task.result()
                for i in range(0, len(items), 2):
                    self._start(qname, items[i].decode(), items[i + 1])
        # let the jobs just started begin before the next claim goes out
        await asyncio.sleep(0)

    async def _block_on(self, qname: str) -> list[bytes]:
        """Block until the queue has a job; returns the claimed (id, envelope) pairs."""
        qk = self.qkeys[qname]
        keys = [qk.queued, qk.inflight(self.worker_id), qk.jobs, qk.state, qk.paused]
        marker = f"running {self.worker_id}"
        # BLMOVE puts the job straight into our in-flight list: if this process dies
        # between here and the claim, the job is recovered like any other. The claim
        # rides in the same pipeline, so the server runs it as soon as BLMOVE returns.
        try:
            # Each queue blocks on a lane of its own (claims and acks must not queue behind
            # a blocked BLMOVE): a lone job's wait is one round trip with little around it.
            lane = self._block_lanes.get(qname)
            if lane is None:
                lane = self._block_lanes[qname] = AsyncLane(self.redis)
            if await lane.open():
                return await self._block_on_lane(lane, qk.queued, keys, marker)
        except RETRYABLE as exc:
            log.warning("lost connection to Redis while waiting for jobs (%s)", exc)
            await asyncio.sleep(0.5)
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.blmove(qk.queued, keys[1], BLOCK_TIMEOUT, "RIGHT", "LEFT")
        pipe.evalsha(SCRIPTS.claim_moved.sha, len(keys), *keys, marker)
        try:
            moved, claimed = await pipe.execute(raise_on_error=False)
            if isinstance(moved, Exception):
                raise moved
            if isinstance(claimed, NoScriptError):
                # the server lacked the script (fresh or restarted): load and repeat
                if moved is None:
                    return []
                claimed = await SCRIPTS.claim_moved.run_async(self.redis, keys, [marker])
            elif isinstance(claimed, Exception):
                raise claimed
            return claimed  # type: ignore[no-any-return]
        except RETRYABLE as exc:
            log.warning("lost connection to Redis while waiting for jobs (%s)", exc)
            await asyncio.sleep(0.5)
            return []

    async def _block_on_lane(
        self, lane: AsyncLane, queued: str, keys: list[str], marker: str
    ) -> list[bytes]:
        moved_reply = lane.send("BLMOVE", queued, keys[1], "RIGHT", "LEFT", BLOCK_TIMEOUT)
        claim_reply = lane.send("EVALSHA", SCRIPTS.claim_moved.sha, len(keys), *keys, marker)
        try:
            async with asyncio.timeout(BLOCK_TIMEOUT + BLOCK_REPLY_GRACE):
                moved = await moved_reply
                claimed = await claim_reply
        except TimeoutError:
            # the server stopped answering: drop the connection (a job BLMOVE may have
            # moved stays in our in-flight list, where the stray check finds it)
            claim_reply.cancel()
            await lane.aclose()
            raise ConnectionError("no reply to a blocking fetch; reconnecting") from None
        except BaseException:
            # the connection was lost: the claim's reply is lost with it
            if claim_reply.done() and not claim_reply.cancelled():
                claim_reply.exception()
            else:
                claim_reply.cancel()
            raise
        # error replies arrive as values (hiredis.ReplyError)
        if isinstance(moved, Exception):
            raise reply_error(str(moved))
        if isinstance(claimed, Exception):
            if not str(claimed).startswith("NOSCRIPT"):
                raise reply_error(str(claimed))
            # the server lacked the script (fresh or restarted): load and repeat
            if moved is None:
                await self.redis.script_load(SCRIPTS.claim_moved.source)
                return []
            claimed = await SCRIPTS.claim_moved.run_async(self.redis, keys, [marker])
        return claimed  # type: ignore[no-any-return]

    async def _drain_blockers(self) -> None:
        """Fetching has ended (quiet or stop): wait out the blocked fetches and give
        back at once whatever they claimed, so those jobs are not held (and shown as
        running) by a worker that will not run them."""
        # Never cancel a blocked BLMOVE: the server may have moved a job already.
        blockers, self._blockers = self._blockers, {}
        results = await asyncio.gather(*blockers.values(), return_exceptions=True)
        for qname, items in zip(blockers, results, strict=True):
            if isinstance(items, BaseException) or not items:
                continue  # whatever is left in flight goes back with _return_unfinished
            qk = self.qkeys[qname]
            ids = [items[i] for i in range(0, len(items), 2)]
            with contextlib.suppress(*RETRYABLE):
                await SCRIPTS.requeue.run_async(
                    self.redis, [qk.inflight(self.worker_id), qk.queued, qk.state, qk.jobs], ids
                )

    async def _burst_done(self) -> bool:
        if self.running or self.settler.busy:
            return False
        pipe = self.redis.pipeline(transaction=False)
        for qk in self.qkeys.values():
            pipe.llen(qk.queued)
            pipe.zcard(qk.scheduled)
            pipe.zcard(qk.prioritized)
        return not any(await pipe.execute())

    # -- running ---------------------------------------------------------------------

    def _start(self, qname: str, job_id: str, payload: bytes) -> None:
        task = self.loop.create_task(self._run_one(qname, job_id, payload))
        self.running[job_id] = Running(qname, job_id, payload, time.time(), task)

    async def _run_one(self, qname: str, job_id: str, payload: bytes) -> None:
        running = self.running[job_id]
        try:
            outcome = await self.executor.run(qname, job_id, payload, running)
        except asyncio.CancelledError:
            self.running.pop(job_id, None)
            if job_id in self._cancelled:
                if not self._cancelled.pop(job_id):
                    self._settle_cancelled(running)
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
            self.processed += 1
            self.settler.succeeded(outcome)
        else:
            self._settle_failure(outcome)
        if outcome.envelope is not None:
            self.metrics.record(qname, outcome.envelope.name, outcome.duration, not outcome.ok)

    def _settle_failure(self, outcome: Outcome) -> None:
        self.failed += 1
        self.settler.failed(outcome)

    # -- scheduled, retrying and periodic jobs ----------------------------------------------------

    async def _schedule_loop(self) -> None:
        interval = self.settings.schedule_poll_interval
        # a flag, not only cancel(): redis-py may turn a cancellation mid-command into
        # a connection error, which this loop would otherwise survive
        while not self._stop.is_set():
            try:
                next_due = await promote_due(self.redis, list(self.qkeys.values()))
                for ticker in self.tickers:
                    tick = await ticker.tick(self.redis)
                    if tick is not None:
                        next_due = tick if next_due is None else min(next_due, tick)
            except RETRYABLE as exc:
                log.warning("cannot promote scheduled jobs (%s)", exc)
                next_due = None
            delay = interval if next_due is None else min(interval, next_due - time.time())
            # a little jitter keeps many workers from calling in lockstep
            await asyncio.sleep(max(0.005, delay) * random.uniform(0.9, 1.0))

    async def _metrics_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(1.0)
            try:
                await self.metrics.flush(self.redis)
            except RETRYABLE as exc:
                log.debug("metrics not flushed yet: %s", exc)

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
