"""The job record: its JSON envelope, argument encoding, and the `Job` handle.

The envelope is the language-neutral definition of one job (docs/protocol.md).
Arguments are JSON plus datetime, date, time, UUID, Decimal, enums,
dataclasses and msgspec Structs, never pickle; on the worker they are turned
back into those types from the job function's type hints.
"""

from __future__ import annotations

import enum
import os
import time
from typing import Annotated, Any

import msgspec

from steep.errors import JobFailed


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # an attempt failed; the job waits to be retried
    DEAD = "dead"  # failed for good: out of retries, or an error not retried
    INTERRUPTED = "interrupted"  # an iterable job parked by an operator until resumed
    # the old name of RETRYING (a job in it has not failed for good), kept for one release
    FAILED = "retrying"

    @classmethod
    def _missing_(cls, value: object) -> JobStatus | None:
        # the word releases before this one stored for a job waiting to retry
        return cls.RETRYING if value == "failed" else None


class Envelope(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """One job as stored in Redis (field names are part of the protocol)."""

    id: str
    name: str
    queue: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    # checked on decode: a bad value makes the job a BadPayload (dead set, with the reason)
    retries: Annotated[int, msgspec.Meta(ge=0)] = 0
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    result_ttl: int | None = None
    attempt: int = 0
    enqueued_at: float = 0.0
    tags: list[str] = []
    # free-form headers carried from the enqueuing side to the run (middleware
    # put trace context, request ids and the like here)
    meta: dict[str, Any] = {}
    # unique jobs (steep.features.unique): the lock's key, and when the lock is released
    unique_key: str | None = None
    unique_until: str | None = None
    # expiring jobs (steep.features.expiry): discarded unrun when not started by then (epoch s)
    expires_at: float | None = None
    # priority within the queue (steep.features.priority): higher runs first; 0 = none
    priority: int = 0
    # retry timing given per call (`.options(backoff=...)`); absent: the job function's
    backoff: float | None = None
    max_backoff: float | None = None
    v: int = 1


ACCEPTED_TYPES = (
    "JSON types (str, int, float, bool, None, list, tuple, dict), datetime, date, time, "
    "UUID, Decimal, enums, sets, dataclasses and msgspec Structs"
)

_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)
_any_decoder = msgspec.json.Decoder()


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(data: bytes | str) -> Any:
    return _any_decoder.decode(data)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode a job; a TypeError names the argument that cannot be encoded."""
    try:
        return _encoder.encode(envelope)
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise _explain(envelope, exc) from None


def decode_envelope(data: bytes | str) -> Envelope:
    return _envelope_decoder.decode(data)


def _explain(envelope: Envelope, exc: Exception) -> TypeError:
    named: list[tuple[str, Any]] = [(f"#{i} (positional)", a) for i, a in enumerate(envelope.args)]
    named += [(repr(k), v) for k, v in envelope.kwargs.items()]
    for label, value in named:
        try:
            _encoder.encode(value)
        except (TypeError, msgspec.EncodeError, OverflowError) as inner:
            return TypeError(
                f"cannot enqueue {envelope.name}: argument {label} of type "
                f"{type(value).__name__} cannot be encoded ({inner}); "
                f"steep accepts {ACCEPTED_TYPES}"
            )
    return TypeError(f"cannot enqueue {envelope.name}: {exc}")


_last_us = 0


def new_job_id() -> str:
    """A unique id that sorts by creation time: microseconds (strictly rising within a
    process) then 48 random bits, in hex."""
    global _last_us
    _last_us = max(time.time_ns() // 1000, _last_us + 1)
    return f"{_last_us:014x}{os.urandom(6).hex()}"


def parse_state(raw: bytes | None) -> tuple[JobStatus | None, str, float]:
    """Split a stored state word into (status, worker id, started at seconds)."""
    if raw is None:
        return None, "", 0.0
    text = raw.decode()
    if text.startswith("running"):
        _, worker, started_ms = text.split(" ")
        return JobStatus.RUNNING, worker, int(started_ms) / 1000
    return JobStatus(text), "", 0.0


class Job:
    """A handle on one enqueued job: its id and queue, and live views of its state.

    `duplicate` is True when a unique job was not added because an equal one already
    waits or runs; the handle is then that job's.
    """

    __slots__ = ("duplicate", "id", "keeps_result", "name", "queue")

    def __init__(
        self,
        id: str,
        queue: str,
        name: str = "",
        duplicate: bool = False,
        keeps_result: bool | None = None,
    ) -> None:
        self.id = id
        self.queue = queue
        self.name = name
        self.duplicate = duplicate
        # False when the handle knows the job was enqueued without result_ttl: nothing
        # to wait for (None: not known, as for a handle made from an id)
        self.keeps_result = keeps_result

    def __repr__(self) -> str:
        dup = " (duplicate)" if self.duplicate else ""
        return f"<Job {self.id} {self.name or '?'} on {self.queue!r}{dup}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (other.id, other.queue) == (self.id, self.queue)

    def __hash__(self) -> int:
        return hash((self.id, self.queue))

    @property
    def status(self) -> JobStatus | None:
        """The job's state now, or None when steep holds no record of it.

        A job that succeeded without `result_ttl` leaves no record behind, so
        its status becomes None; with `result_ttl` it reads `succeeded` for that long.
        """
        from steep.connection import get_client, get_keys

        qk = get_keys().queue(self.queue)
        pipe = get_client().pipeline(transaction=False)
        pipe.hget(qk.state, self.id)
        pipe.hexists(qk.jobs, self.id)
        pipe.lindex(qk.result(self.id), 0)
        state, known, outcome = pipe.execute()
        return _status_from(state, known, outcome)

    def result(self, timeout: float | None = None) -> Any:
        """Block until the job has finished and return its value (or raise its error).

        Needs the job to be enqueued with `result_ttl`. Waits server-side (a
        blocking Redis call), so the caller does not poll. `timeout=None` waits
        forever; on timeout raises TimeoutError.
        """
        from steep.connection import get_client, get_keys

        self._check_keeps_result()
        key = get_keys().queue(self.queue).result(self.id)
        client = get_client()
        deadline = None if timeout is None else time.monotonic() + timeout
        # BLMOVE from a list to itself returns its one element without
        # consuming it, so any number of callers can wait on the same job.
        # Waits in slices shorter than the client's socket timeout.
        while (wait := _slice(deadline)) is not None:
            raw = client.blmove(key, key, wait, "RIGHT", "LEFT")  # type: ignore[arg-type]
            if raw is not None:
                return self._outcome(raw)
        raise TimeoutError(f"job {self.id} did not finish within {timeout} s")

    async def aresult(self, timeout: float | None = None) -> Any:
        """`result()` for async code."""
        from steep.connection import get_async_client, get_keys

        self._check_keeps_result()
        key = get_keys().queue(self.queue).result(self.id)
        client = get_async_client()
        deadline = None if timeout is None else time.monotonic() + timeout
        while (wait := _slice(deadline)) is not None:
            raw = await client.blmove(key, key, wait, "RIGHT", "LEFT")  # type: ignore[arg-type]
            if raw is not None:
                return self._outcome(raw)
        raise TimeoutError(f"job {self.id} did not finish within {timeout} s")

    def _check_keeps_result(self) -> None:
        if self.keeps_result is False:
            raise ValueError(
                f"job {self.id} ({self.name or '?'}) keeps no result, so there is nothing to "
                "wait for: enqueue it with result_ttl, e.g. "
                f"{(self.name or 'job').rsplit('.', 1)[-1]}.options(result_ttl=300).enqueue(...)"
            )

    def _outcome(self, raw: bytes | str) -> Any:
        outcome = decode(raw)
        if "error" in outcome:
            raise JobFailed(self.id, outcome["error"])
        value = outcome.get("value")
        from steep.registry import lookup_local

        spec = lookup_local(self.name) if self.name else None
        if spec is not None and spec.return_type is not None:
            try:
                return msgspec.convert(value, spec.return_type, strict=False)
            except msgspec.ValidationError:
                return value
        return value


# Longest single blocking wait for a result: below any socket timeout steep sets (5 s).
RESULT_WAIT_SLICE = 2.0


def _slice(deadline: float | None) -> float | None:
    """Seconds for the next blocking wait (at least 1 ms), or None once the deadline passed."""
    if deadline is None:
        return RESULT_WAIT_SLICE
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    return max(min(left, RESULT_WAIT_SLICE), 0.001)


def _status_from(state: bytes | None, known: bool, outcome: bytes | None) -> JobStatus | None:
    """A job's status from its state entry, whether its envelope is stored, and its kept
    outcome (a job that settled leaves only that: dead when it holds an error, as for a job
    dropped unrun because it expired)."""
    status, _, _ = parse_state(state)
    if status is not None:
        return status
    if known:
        return JobStatus.QUEUED
    if outcome:
        return JobStatus.DEAD if "error" in decode(outcome) else JobStatus.SUCCEEDED
    return None
