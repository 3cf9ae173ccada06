"""Slot threads: how a worker process runs plain-function jobs with no event-loop hop.

When every job a worker process knows is a plain `def` (settings.worker_mode "auto"),
each of its `concurrency` slots is a thread that runs a job and then, in one round trip
on a connection of its own, acknowledges it and claims the next one (reliable fetch as
everywhere: the claim moves the job into this process's in-flight list). A busy slot
never waits for the event loop, and the loop is not woken per job. The profile that
asked for this: handing each job from the loop to a thread and back cost about half of
a short sync job's CPU, in context switches (docs/benchmark-method.md).

The event loop keeps everything else. Its Fetcher (worker/fetch.py) blocks on the
queues while the slots are idle and gives what it claims to a parked slot; a slot parks
when its own claim finds nothing. A job this path does not run itself (an async
function, one that a feature's hook concerns, an envelope that cannot be decoded or
bound) is run by the loop's executor while its slot waits, so the concurrency holds.
Failures go to the loop's Settler (retries, the dead set); so does a success whose
acknowledgement did not get through. Timeouts are kept by one watchdog thread; a cancel
arrives as for any thread job (worker/control.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import redis

from steep import hooks, middleware
from steep.connection import SCRIPTS, make_client
from steep.context import JobContext
from steep.errors import JobTimeout, UnknownJob
from steep.hooks import Outcome
from steep.job import decode_envelope
from steep.lane import Lane, Lanes, reply_error
from steep.registry import lookup
from steep.worker import fetch
from steep.worker.executor import Running, _ThreadCall, log_started
from steep.worker.listen import LISTEN, listen
from steep.worker.slot_calls import SlotCalls
from steep.worker.watchdog import Deadline, Watchdog

try:
    import hiredis
except ImportError:  # pragma: no cover - redis[hiredis] is a dependency
    hiredis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from steep.worker.process import WorkerProcess

log = logging.getLogger("steep.worker")


def slots_fit(process: WorkerProcess) -> str:
    """Why this process runs its jobs on the event loop's executor, or "" for slot threads."""
    from steep import registry
    from steep.lane_cluster import is_cluster

    mode = process.settings.worker_mode
    if mode == "loop":
        return "worker_mode is loop"
    if hiredis is None:
        return "hiredis is not installed"
    if is_cluster(process.redis):
        return "on a Redis Cluster a queue's primary can move; the event loop follows it"
    if process.settings.min_replicas_ack:
        return "min_replicas_ack waits for replicas on the event loop's connection"
    if mode == "auto":
        asyncs = [n for n in registry.names() if (f := registry.lookup_local(n)) and f.is_async]
        if asyncs:
            return f"async jobs are registered ({', '.join(asyncs[:3])})"
    return ""


class SlotThread(threading.Thread):
    def __init__(self, slots: Slots, index: int) -> None:
        super().__init__(name=f"steep-slot-{index}", daemon=True)
        self.slots = slots
        self.process = slots.process
        self.lane: Lane | None = None
        # held while this slot acknowledges a job: the process's final give-back and an
        # early settlement (a stuck timeout, an overdue cancel) take it first
        self.lock = threading.Lock()
        self.abandoned = False  # the process gave its in-flight jobs back: write nothing
        self.early: str | None = None  # the job the event loop settled already
        self.current: str | None = None  # the job in this slot; None while it is parked
        self.blocking = False  # waiting on the queue as its listening slot (listen.py)
        self.client_id: int | None = None  # CLIENT ID of the lane, once asked
        self.processed = 0

    # -- the slot's loop -------------------------------------------------------------

    def run(self) -> None:
        inbox = self.slots.inbox
        item: tuple[str, str, bytes, Running] | None = None
        while True:
            if item is None:
                item = inbox.get()
                if item is None:
                    break
                if item is LISTEN:
                    item = self._listen()
                    continue
            if self.abandoned:
                item = None  # the process gave it back to its queue with the rest
                continue
            item[3].slot = self  # where an early settlement (control.py) finds the job
            self.current = item[1]
            try:
                item = self._run_job(*item)
            except Exception:
                # a bug in steep, not in the job: the job stays in flight and the stray
                # check returns it to its queue, so it is not lost
                log.exception("internal error in a job slot; the job will run again")
                self._tell(self.process.running.pop, self.current, None)
                item = None
            if item is None:
                # parked: the fetcher hears that a slot is free
                self.current = None
                self._tell(self.process._wake.set)
        if self.lane is not None:
            self.lane.close()

    def _listen(self) -> tuple[str, str, bytes, Running] | None:
        try:
            return listen(self)
        except Exception:
            # a bug in steep: the role must not be lost with it (no slot would wait)
            log.exception("internal error in the listening job slot")
            time.sleep(0.5)
            self.slots.inbox.put(LISTEN)
            return None

    def _tell(self, method: Any, *args: Any) -> None:
        """Call `method(*args)` on the event loop (nothing once the loop is closed)."""
        with contextlib.suppress(RuntimeError):
            self.process.loop.call_soon_threadsafe(method, *args)

    def _run_job(
        self, qname: str, job_id: str, payload: bytes, running: Running
    ) -> tuple[str, str, bytes, Running] | None:
        started = time.perf_counter()
        try:
            envelope = decode_envelope(payload)
            function = lookup(envelope.name)
            if function.is_async or (hooks._JOB_HOOKS and hooks.hooks_for(envelope, function)):
                return self._delegate(qname, job_id, running)
            args, kwargs = function.bind(envelope.args, envelope.kwargs)
        except (msgspec.DecodeError, msgspec.ValidationError, UnknownJob, TypeError):
            # the event loop's path says exactly what is wrong with it
            return self._delegate(qname, job_id, running)
        ctx = JobContext(
            job_id,
            envelope.name,
            qname,
            envelope.attempt + 1,
            self.process.worker_id,
            envelope.meta,
            running.state,
        )
        running.name = envelope.name
        log_started(ctx)
        call = running.call
        assert call is not None
        deadline = None
        if envelope.timeout is not None:
            deadline = Deadline(self, call, job_id)
            self.slots.watchdog.arm(deadline, envelope.timeout)
        kind, value = call.run(function.fn, args, kwargs, ctx, middleware.chains()[1])
        if deadline is not None:
            deadline.live = False
        outcome = Outcome(qname, job_id, payload, envelope, function)
        outcome.duration = time.perf_counter() - started
        if running.state.cleanups:
            self._on_loop(self.process.executor.cleanup(running.state))
        timed_out = deadline is not None and deadline.fired
        if kind == "ok" and not timed_out:
            outcome.ok = True
            outcome.value = value
            return self._succeeded(outcome)
        if timed_out:
            value = JobTimeout(f"{ctx.name} ran longer than its timeout of {envelope.timeout} s")
        elif isinstance(value, KeyboardInterrupt | SystemExit):
            value = RuntimeError(f"job raised {type(value).__name__}")
        outcome.exc = value
        with self.lock:
            if self.early != job_id and not self.abandoned:
                # the event loop frees the slot and writes the failure (retry or dead set)
                self._tell(self.process._finish, qname, job_id, outcome)
        return self._claim_next(self.process.fetcher._queue_order())

    def _succeeded(self, outcome: Outcome) -> tuple[str, str, bytes, Running] | None:
        """Acknowledge the job and claim the next one for this slot, in one round trip."""
        process = self.process
        qname, job_id = outcome.queue, outcome.job_id
        entry = process.settler.entry(outcome)
        packed = self.slots.calls.ack(qname, entry)
        order = process.fetcher._queue_order()
        claim = not process.fetcher.quiet
        if claim:
            packed += self._claim_command(order[0])
        with self.lock:
            if self.abandoned or self.early == job_id:
                return None
            try:
                replies = self._send(packed, 2 if claim else 1)
            except (OSError, hiredis.ProtocolError) as exc:
                # the ack may not have been written: the event loop's settler writes it
                # (an ack is safe to repeat); jobs a lost claim reply took stay in flight
                # until the stray check returns them
                log.warning("a job slot lost its connection (%s); reconnecting", exc)
                self._drop_lane()
                self._tell(process._finish, qname, job_id, outcome)
                return None  # parked: the fetcher, with its back-off, brings the next job
            acked = isinstance(replies[0], int)
            if not acked:
                # NOSCRIPT after a restart, or an error: the settler writes it instead
                self._reply_error(replies[0])
                self._tell(process._finish, qname, job_id, outcome)
        # the next job is registered before the finished one leaves `running`, so
        # the fetcher never sees a slot free that is about to be taken again
        following = self._take(order[0], replies[1]) if claim else None
        if acked:
            process.settler.log_success(outcome)
            self.processed += 1
            self.slots.finished.append((qname, outcome.name, outcome.duration))
            process.running.pop(job_id, None)
            process._cancelled.pop(job_id, None)
            if not self.slots.acked:
                self.slots.acked = True
                if process.on_worked is not None:
                    self._tell(process.on_worked)
        if following is not False:
            return following
        return self._claim_next(order[1:])

    # -- claiming --------------------------------------------------------------------

    def _claim_command(self, qname: str) -> bytes:
        marker = f"running {self.process.worker_id} {int(time.time() * 1000)}"
        return self.slots.calls.claim(qname, marker)

    def _claim_next(self, order: list[str]) -> tuple[str, str, bytes, Running] | None:
        """Claim this slot's next job, trying the queues in `order`."""
        for qname in order:
            if self.process.fetcher.quiet or self.abandoned:
                return None
            try:
                reply = self._send(self._claim_command(qname), 1)[0]
            except (OSError, hiredis.ProtocolError) as exc:
                log.warning("a job slot lost its connection (%s); reconnecting", exc)
                self._drop_lane()
                return None
            following = self._take(qname, reply)
            if following is not False:
                return following
        return None

    def _take(
        self, qname: str, reply: Any
    ) -> tuple[str, str, bytes, Running] | Literal[False] | None:
        """The job a claim's reply brings, registered as running; False: the queue had
        none; None: the fetcher takes over (an error, or an id without an envelope)."""
        if isinstance(reply, hiredis.ReplyError):
            self._reply_error(reply)
            return None  # the fetcher or the listening slot claims instead, with back-off
        if not reply:
            return False
        job_id, payload = reply[0].decode(), reply[1]
        if not payload:  # the id had no envelope: the event loop says so
            self._tell(self.process._start, qname, job_id, payload)
            return None
        running = Running(qname, job_id, payload, time.time(), call=_ThreadCall(), slot=self)
        self.process.running[job_id] = running
        return qname, job_id, payload, running

    # -- the connection ----------------------------------------------------------------

    def _lane(self) -> Lane:
        lane = self.lane
        if lane is None:
            lane = self.lane = self.slots.open_lane()
            if lane is None:
                raise ConnectionError("cannot connect to Redis")
        return lane

    def _send(self, packed: bytes, replies: int) -> list[Any]:
        lane = self._lane()
        lane.sock.sendall(packed)
        out: list[Any] = []
        reader = lane.reader
        while len(out) < replies:
            reply = reader.gets()
            if reply is not False:
                out.append(reply)
                continue
            data = lane.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            reader.feed(data)
        return out

    def _reply_error(self, reply: Any) -> None:
        message = str(reply)
        if message.startswith("NOSCRIPT"):
            self.slots.load_scripts()  # a fresh or restarted server
            return
        if message.startswith("READONLY"):
            self._drop_lane()  # a primary demoted by a failover: the next lane finds the new one
        self.slots.warn(f"a job slot's call failed: {reply_error(message)}")

    def _drop_lane(self) -> None:
        if self.lane is not None:
            self.lane.close()
            self.lane = None
            self.client_id = None

    # -- the event loop's help ----------------------------------------------------------

    def _on_loop(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.process.loop).result()

    def _delegate(
        self, qname: str, job_id: str, running: Running
    ) -> tuple[str, str, bytes, Running] | None:
        """Run the job on the event loop's path (its executor, hooks and settler) and
        wait for it: the slot stays taken while it runs."""
        try:
            self._on_loop(self.process._run_delegated(qname, job_id, running))
        except (concurrent.futures.CancelledError, RuntimeError):
            return None  # the process is stopping: the job goes back to its queue
        return self._claim_next(self.process.fetcher._queue_order())

    def settle_early(self, job_id: str) -> bool:
        """The event loop settles this slot's job itself (its thread is stuck): True
        unless the slot got there first."""
        with self.lock:
            if job_id not in self.process.running:
                return False
            self.early = job_id
            return True


class Slots:
    """The slot threads of one worker process, and what they share."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.client: redis.Redis = make_client(process.settings)
        self._lanes = Lanes(self.client)
        # jobs for parked slots, LISTEN for the next listening slot, None: end
        self.inbox: SimpleQueue[Any] = SimpleQueue()
        # (queue, name, seconds) of the jobs the slots settled, for the metrics loop
        self.finished: deque[tuple[str, str, float]] = deque()
        self.acked = False
        self.watchdog = Watchdog(process)
        self.threads = [SlotThread(self, i) for i in range(process.concurrency)]
        self.calls = SlotCalls(process)
        self._warned = 0.0
        # one queue, not a burst: a slot waits on it itself (listen.py); else the fetcher waits
        single = len(process.queues) == 1 and not process.burst
        self.listen_queue: str | None = process.queues[0].name if single else None

    def start(self) -> None:
        self.load_scripts()
        self.watchdog.start()
        for thread in self.threads:
            thread.start()
        if self.listen_queue is not None:
            self.inbox.put(LISTEN)  # the first listening slot

    def warn(self, message: str) -> None:
        """A warning from the slots, once a second at most (they meet an outage together)."""
        now = time.monotonic()
        if now - self._warned >= 1.0:
            self._warned = now
            log.warning("%s", message)

    def listening(self) -> list[int]:
        """CLIENT IDs of the slots' connections that wait on the queue now."""
        return [t.client_id for t in self.threads if t.blocking and t.client_id is not None]

    def load_scripts(self) -> None:
        try:
            for script in (SCRIPTS.ack, SCRIPTS.claim):
                self.client.script_load(script.source)
        except redis.RedisError as exc:
            log.debug("scripts not loaded yet: %s", exc)

    def open_lane(self) -> Lane | None:
        lane = self._lanes._open()
        if lane is not None:
            # a server that stopped answering: the call fails as a lost connection, and the
            # process can still give its jobs back and stop (abandon() takes each slot's lock)
            lane.sock.settimeout(fetch.BLOCK_REPLY_GRACE)
        return lane

    def usable(self) -> bool:
        """Whether the slots can drive connections of their own (a connection class that
        keeps a plain socket); if not, the event loop runs the jobs. A server that is away
        now is no reason: the slots connect once it is back."""
        lane = self.open_lane()
        if lane is not None:
            self.threads[0].lane = lane  # the first slot's connection
        return not self._lanes.broken

    @property
    def busy(self) -> bool:
        """A slot has a job, or is claiming one."""
        return any(t.current is not None for t in self.threads)

    @property
    def processed(self) -> int:
        return sum(t.processed for t in self.threads)

    def give(self, qname: str, job_id: str, payload: bytes) -> None:
        """A job the fetcher claimed, for the next parked slot (on the event loop)."""
        running = Running(qname, job_id, payload, time.time(), call=_ThreadCall())
        self.process.running[job_id] = running
        self.inbox.put((qname, job_id, payload, running))

    def record_metrics(self) -> None:
        """Move the slots' finished jobs into the process's metrics (on the event loop)."""
        finished, record = self.finished, self.process.metrics.record
        while finished:
            qname, name, seconds = finished.popleft()
            record(qname, name, seconds, False)

    def abandon(self) -> None:
        """The process gives its in-flight jobs back: no slot acknowledges any more."""
        for thread in self.threads:
            with thread.lock:
                thread.abandoned = True

    def shutdown(self) -> None:
        for _ in self.threads:
            self.inbox.put(None)
        self.watchdog.stop()
        self.client.close()
