"""Runs one claimed job and reports its outcome; never settles anything itself.

Async jobs run as tasks on the worker's event loop, plain functions in a
thread pool; both share the process's concurrency. Timeouts cancel an async
job and raise JobTimeout inside a thread; a thread that will not stop marks
the process for recycling, since Python cannot kill a thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from steep import hooks, middleware
from steep.context import JobContext, RunState, _current
from steep.errors import JobTimeout, UnknownJob
from steep.hooks import Outcome
from steep.job import decode_envelope
from steep.registry import JobFunction, lookup
from steep.worker.threads import JobThreads

log = logging.getLogger("steep.worker")

# How long a thread gets to honour an injected JobTimeout before the process
# is recycled around it.
THREAD_STOP_GRACE = 5.0

# Seconds a job waits before another try when a feature hook failed to decide on it.
HOOK_FAILURE_DELAY = 5.0


class _ThreadCall:
    """A sync job call in a pool thread that the event loop can interrupt."""

    __slots__ = ("lock", "running", "thread_id")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = False
        self.thread_id = 0

    def run(
        self,
        fn: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        ctx: JobContext,
        chain: tuple[Any, ...],
    ) -> Any:
        token = _current.set(ctx)
        try:
            try:
                with self.lock:
                    self.thread_id = threading.get_ident()
                    self.running = True
                try:
                    if chain:
                        with middleware.around_execute(chain, ctx):
                            return ("ok", fn(*args, **kwargs))
                    return ("ok", fn(*args, **kwargs))
                finally:
                    with self.lock:
                        self.running = False
            # An injected JobTimeout can land anywhere in this frame, even after
            # fn returned; catching everything here keeps it from escaping into
            # the pool's own machinery.
            except BaseException as exc:
                return ("err", exc)
        finally:
            _current.reset(token)

    def interrupt(self, exc_type: type[BaseException] = JobTimeout) -> bool:
        """Raise `exc_type` inside the job's thread at its next Python instruction."""
        with self.lock:
            if not self.running:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread_id), ctypes.py_object(exc_type)
            )
            return True


@dataclass(slots=True)
class Running:
    """A job this process is running: what the operator channel needs to stop it."""

    queue: str
    job_id: str
    payload: bytes
    started: float
    task: asyncio.Task[None] | None = None  # the event loop's task that runs it, if any
    name: str = ""
    call: _ThreadCall | None = None  # set while a sync job runs in a thread
    slot: Any = None  # the slot thread (worker/slots.py) that runs it, if any
    # flags the worker raises for the job (cancel, stop) and its progress reports
    state: RunState = field(default_factory=RunState)


def log_started(ctx: JobContext) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            "job %s %s on %s started (attempt %d)",
            ctx.id,
            ctx.name,
            ctx.queue,
            ctx.attempt,
            extra={
                "job_id": ctx.id,
                "job": ctx.name,
                "queue": ctx.queue,
                "attempt": ctx.attempt,
                "event": "started",
            },
        )


class Executor:
    def __init__(self, concurrency: int, worker_id: str) -> None:
        self.threads_size = concurrency
        self.worker_id = worker_id
        self._threads: JobThreads | None = None
        self.redis: Any = None  # the worker's async client, for feature hooks

    @property
    def threads(self) -> JobThreads:
        if self._threads is None:  # bound to the running loop, made on first use
            self._threads = JobThreads(asyncio.get_running_loop(), self.threads_size)
        return self._threads

    def shutdown(self) -> None:
        if self._threads is not None:
            self._threads.shutdown()

    async def run(self, queue: str, job_id: str, payload: bytes, running: Running) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome(queue, job_id, payload, None, None)
        try:
            outcome.envelope = envelope = decode_envelope(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            outcome.exc, outcome.reason = exc, "BadPayload"
            return outcome
        try:
            outcome.function = function = lookup(envelope.name)
        except UnknownJob as exc:
            outcome.exc, outcome.reason = exc, "UnknownJob"
            return outcome
        try:
            args, kwargs = function.bind(envelope.args, envelope.kwargs)
        except (TypeError, msgspec.ValidationError) as exc:
            outcome.exc = TypeError(
                f"arguments do not match {envelope.name}{function.signature}: {exc}"
            )
            outcome.reason = "ArgumentMismatch"
            return outcome
        ctx = JobContext(
            job_id,
            envelope.name,
            queue,
            envelope.attempt + 1,
            self.worker_id,
            envelope.meta,
            running.state,
        )
        running.name = envelope.name
        if hooks._JOB_HOOKS:
            outcome.hooks = hooks.hooks_for(envelope, function)
            if outcome.hooks and await self._before_run(outcome, ctx):
                return outcome
        log_started(ctx)
        try:
            if function.is_async:
                outcome.value = await self._run_async(function, args, kwargs, ctx, envelope.timeout)
            else:
                outcome.value = await self._run_thread(
                    function, args, kwargs, ctx, envelope.timeout, outcome, running
                )
            outcome.ok = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                exc = RuntimeError(f"job raised {type(exc).__name__}")
            outcome.exc = exc
        outcome.duration = time.perf_counter() - started
        if running.state.cleanups:
            await self.cleanup(running.state)
        return outcome

    async def cleanup(self, state: RunState) -> None:
        """What the features a run used left for the worker to do when it ends."""
        for cleanup in state.cleanups or ():
            await cleanup(self.redis)

    async def _before_run(self, outcome: Outcome, ctx: JobContext) -> bool:
        """Ask the hooks; True when one of them decided the job does not run now."""
        assert outcome.envelope is not None
        for i, hook in enumerate(outcome.hooks):
            try:
                verdict = await hook.before_run(self.redis, outcome.envelope, ctx)
            except Exception as exc:
                # a hook that cannot decide (Redis away, a bug) must neither run the job
                # unchecked nor lose it: try again a little later, no attempt spent
                log.exception("%s hook failed before job %s", hook.name, ctx.id)
                verdict = hooks.Defer(HOOK_FAILURE_DELAY, f"{hook.name} hook failed: {exc}")
            if verdict is not None:
                outcome.verdict = verdict
                # the hooks that already said yes give back what they took
                for earlier in outcome.hooks[:i]:
                    await earlier.after_run(self.redis, outcome)
                outcome.hooks_ran = True
                return True
        return False

    @staticmethod
    async def _run_async(
        function: JobFunction[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        ctx: JobContext,
        timeout: float | None,
    ) -> Any:
        token = _current.set(ctx)
        chain = middleware.chains()[1]
        try:
            if chain:
                with middleware.around_execute(chain, ctx):
                    return await Executor._await(function, args, kwargs, ctx, timeout)
            return await Executor._await(function, args, kwargs, ctx, timeout)
        finally:
            _current.reset(token)

    @staticmethod
    async def _await(
        function: JobFunction[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        ctx: JobContext,
        timeout: float | None,
    ) -> Any:
        if timeout is None:
            return await function.fn(*args, **kwargs)
        cm = asyncio.timeout(timeout)
        try:
            async with cm:
                return await function.fn(*args, **kwargs)
        except TimeoutError:
            if cm.expired():
                raise JobTimeout(f"{ctx.name} ran longer than its timeout of {timeout} s") from None
            raise

    async def _run_thread(
        self,
        function: JobFunction[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        ctx: JobContext,
        timeout: float | None,
        outcome: Outcome,
        running: Running,
    ) -> Any:
        running.call = call = _ThreadCall()
        chain = middleware.chains()[1]
        waiter = self.threads.submit(call.run, function.fn, args, kwargs, ctx, chain)
        if timeout is None:
            kind, value = await waiter
        else:
            try:
                kind, value = await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except TimeoutError:
                call.interrupt()
                done, _ = await asyncio.wait({waiter}, timeout=THREAD_STOP_GRACE)
                if not done:
                    outcome.stuck = True
                raise JobTimeout(f"{ctx.name} ran longer than its timeout of {timeout} s") from None
        if kind == "err":
            raise value
        return value
