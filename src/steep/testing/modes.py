"""Inline and fake mode: enqueued jobs go to this process instead of Redis.

Both take the jobs after the envelope is built and encoded (so an argument that cannot be
encoded fails as it would for real, and enqueue middleware runs) and hand back handles
(`steep.Job`) that answer `status` and `result()` from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from steep import client, middleware
from steep.context import JobContext, _current
from steep.errors import JobFailed
from steep.features.batches.batch import LocalBatches as BatchStore
from steep.features.batches.batch import set_local
from steep.features.batches.records import BatchStatus
from steep.job import Envelope, Job, JobStatus, decode_envelope
from steep.options import JobOptions
from steep.registry import JobFunction, lookup
from steep.testing.batches import LocalBatches


@dataclass(frozen=True, slots=True)
class EnqueuedJob:
    """One job recorded by fake mode, as the worker would get it."""

    id: str
    name: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    at: float | None  # when it is due (epoch seconds); None: now
    envelope: Envelope


class _Handle(Job):
    """A job handle whose state and outcome live in this process."""

    __slots__ = ("_error", "_state", "_value")

    def __init__(self, envelope: Envelope, state: JobStatus) -> None:
        super().__init__(envelope.id, envelope.queue, envelope.name, keeps_result=True)
        self._state = state
        self._value: Any = None
        self._error: dict[str, Any] | None = None

    @property
    def status(self) -> JobStatus | None:
        return self._state

    def result(self, timeout: float | None = None) -> Any:
        if self._state is JobStatus.DEAD and self._error is not None:
            raise JobFailed(self.id, self._error)
        if self._state is not JobStatus.SUCCEEDED:
            raise TimeoutError(f"job {self.id} ({self.name}) has not run: it is {self._state}")
        return self._value

    async def aresult(self, timeout: float | None = None) -> Any:
        return self.result(timeout)


def _error_record(exc: BaseException) -> dict[str, Any]:
    import traceback

    kind = type(exc)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "attempt": 1,
    }


def run_payload(payload: bytes) -> Any:
    """Run one job from its encoded envelope as a worker would: decoded, its arguments
    bound and converted from the function's type hints, `current_job()` set, the execute
    middleware around it. Returns its value; raises what it raised."""
    envelope = decode_envelope(payload)
    function = lookup(envelope.name)
    args, kwargs = function.bind(envelope.args, envelope.kwargs)
    ctx = JobContext(envelope.id, envelope.name, envelope.queue, 1, "inline", envelope.meta)
    token = _current.set(ctx)
    try:
        chain = middleware.chains()[1]
        with middleware.around_execute(chain, ctx) if chain else contextlib.nullcontext():
            value = function.fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = _await(value, ctx)
        return value
    finally:
        _current.reset(token)


def _await(awaitable: Any, ctx: JobContext) -> Any:
    """Run an async job to completion, from sync or async calling code alike (a thread
    with its own event loop: the caller's loop, if any, is busy calling us)."""
    box: dict[str, Any] = {}

    def target() -> None:
        token = _current.set(ctx)
        try:
            box["value"] = asyncio.run(_as_coroutine(awaitable))
        except BaseException as exc:
            box["error"] = exc
        finally:
            _current.reset(token)

    thread = threading.Thread(target=target, name="steep-inline")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


class _Mode:
    """On while used as a context manager (or between `start()` and `stop()`).

    Modes nest: the innermost one started gets the jobs, and the one around it gets them
    again once it stops. Batches, chains and groups live in the mode too (LocalBatches)."""

    def __init__(self) -> None:
        self._previous: client.Divert | None = None
        self._previous_batches: BatchStore | None = None
        self._on = False
        self._local = LocalBatches(self._take)

    def batches(self) -> list[BatchStatus]:
        """The status of every batch, chain and group made in this mode, oldest first."""
        return self._local.statuses()

    def _take(self, envelopes: list[Envelope], payloads: list[bytes]) -> list[Job]:
        return self._divert(envelopes, payloads, _NO_OPTIONS, None)

    def _divert(
        self, envelopes: list[Envelope], payloads: list[bytes], opts: JobOptions, at: float | None
    ) -> list[Job]:
        raise NotImplementedError

    def start(self) -> None:
        if not self._on:
            self._previous = client.set_divert(self._divert)
            self._previous_batches = set_local(self._local)
            self._on = True

    def stop(self) -> None:
        if self._on:
            client.set_divert(self._previous)
            set_local(self._previous_batches)
            self._on = False

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Inline(_Mode):
    """Every job runs once, at enqueue, in the calling thread; scheduled ones too, at once.

    `raise_errors=True` (the default) lets a job's exception propagate from `enqueue`, so a
    test sees it; with False the handle says `dead` and `result()` raises `JobFailed`.
    Retries, rate limits and uniqueness are the worker's and the server's business: inline
    mode does not apply them (use `drain()` on a real server for that).
    """

    def __init__(self, raise_errors: bool = True) -> None:
        super().__init__()
        self.raise_errors = raise_errors

    def _divert(
        self, envelopes: list[Envelope], payloads: list[bytes], opts: JobOptions, at: float | None
    ) -> list[Job]:
        handles: list[Job] = []
        for envelope, payload in zip(envelopes, payloads, strict=True):
            handle = _Handle(envelope, JobStatus.RUNNING)
            handles.append(handle)
            _run(handle, envelope, payload, self._local, self.raise_errors)
        return handles


def _name(job: JobFunction[Any, Any] | str) -> str:
    return job if isinstance(job, str) else job.name


def _run(
    handle: _Handle, envelope: Envelope, payload: bytes, local: LocalBatches, raise_errors: bool
) -> None:
    """Run one job into its handle, and tell its batch (if any) how it ended."""
    try:
        handle._value = run_payload(payload)
    except Exception as exc:
        handle._error, handle._state = _error_record(exc), JobStatus.DEAD
        local.finished(envelope, False)
        if raise_errors:
            raise
        return
    handle._state = JobStatus.SUCCEEDED
    local.finished(envelope, True, handle._value)


class Fake(_Mode):
    """Records what is enqueued, runs nothing, touches no server."""

    def __init__(self) -> None:
        super().__init__()
        self._jobs: list[EnqueuedJob] = []
        self._handles: dict[str, _Handle] = {}

    def _divert(
        self, envelopes: list[Envelope], payloads: list[bytes], opts: JobOptions, at: float | None
    ) -> list[Job]:
        state = JobStatus.SCHEDULED if at is not None else JobStatus.QUEUED
        for envelope in envelopes:
            # the decoded form, as the worker sees it (tuples become lists, dates strings)
            seen = decode_envelope(_encode(envelope))
            self._jobs.append(
                EnqueuedJob(
                    envelope.id, envelope.name, envelope.queue, seen.args, seen.kwargs, at, seen
                )
            )
        handles = [_Handle(e, state) for e in envelopes]
        self._handles.update((h.id, h) for h in handles)
        return list[Job](handles)

    def jobs(
        self, job: JobFunction[Any, Any] | str | None = None, *, queue: str | None = None
    ) -> list[EnqueuedJob]:
        """The recorded jobs, oldest first: all, or those of one job function / queue."""
        name = None if job is None else _name(job)
        return [
            j
            for j in self._jobs
            if (name is None or j.name == name) and (queue is None or j.queue == queue)
        ]

    def assert_enqueued(
        self,
        job: JobFunction[Any, Any] | str,
        *args: Any,
        queue: str | None = None,
        count: int | None = None,
        **kwargs: Any,
    ) -> list[EnqueuedJob]:
        """Fail unless `job` was enqueued (with these arguments, when given; `count` times,
        when given); returns the matching records."""
        found = self.jobs(job, queue=queue)
        if args or kwargs:
            want = decode_envelope(_encode(Envelope("", "", "", list(args), kwargs)))
            found = [j for j in found if j.args == want.args and j.kwargs == want.kwargs]
        if (count is None and not found) or (count is not None and len(found) != count):
            call = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            times = "" if count is None else f" {count} time(s), found {len(found)}"
            where = f" on {queue!r}" if queue else ""
            raise AssertionError(
                f"expected {_name(job)}({call}){where} to be enqueued{times}; "
                f"enqueued: {self._summary()}"
            )
        return found

    def assert_not_enqueued(self, job: JobFunction[Any, Any] | str, **filters: Any) -> None:
        found = self.jobs(job, **filters)
        if found:
            raise AssertionError(
                f"expected no {_name(job)} to be enqueued; enqueued: {self._summary()}"
            )

    def clear(self) -> None:
        self._jobs.clear()

    def drain(self) -> list[Any]:
        """Run the recorded jobs inline, oldest first, and those they enqueue (a batch's
        callbacks, a chain's next steps too), until none is left; their return values. A
        job's exception propagates (it is dead; what is left stays). The handles that
        `enqueue` returned answer `status` and `result()` afterwards."""
        values = []
        while self._jobs:
            job = self._jobs.pop(0)
            handle = self._handles.pop(job.id, None) or _Handle(job.envelope, JobStatus.QUEUED)
            _run(handle, job.envelope, _encode(job.envelope), self._local, True)
            values.append(handle._value)
        return values

    def _summary(self) -> str:
        if not self._jobs:
            return "nothing"
        return ", ".join(f"{j.name}{tuple(j.args)!r} on {j.queue!r}" for j in self._jobs[:20])


_NO_OPTIONS = JobOptions()


def _encode(envelope: Envelope) -> bytes:
    from steep.job import encode_envelope

    return encode_envelope(envelope)


@contextlib.contextmanager
def inline(raise_errors: bool = True) -> Iterator[Inline]:
    """Run every job at enqueue while the block runs (see `Inline`)."""
    with Inline(raise_errors) as mode:
        yield mode


@contextlib.contextmanager
def fake() -> Iterator[Fake]:
    """Record every job enqueued while the block runs, and run none (see `Fake`)."""
    with Fake() as mode:
        yield mode
