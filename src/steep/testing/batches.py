"""Batches, chains and groups in inline and fake mode: their records kept in this process.

The bookkeeping follows the server's (scripts/batch_record.lua and the worker's batch hook,
steep.features.batches.hook) step for step: members are registered before they are pushed;
a member's final outcome is recorded once; a chain's next step is added before the step that
made it is counted; once a closed batch has no pending member its `on_complete` callback is
pushed, and its `on_success` too when none died; a child batch counts as one member of its
parent, done when it completes. Pushing goes through the mode, so inline mode runs what is
pushed at once and fake mode records it until `drain()`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from steep import middleware
from steep.features.batches.delivery import member_envelope, next_step
from steep.features.batches.ids import derived_id
from steep.features.batches.records import BatchError, BatchStatus
from steep.features.batches.workflow import Signature
from steep.job import Envelope, Job, JobStatus, encode, encode_envelope

if TYPE_CHECKING:
    from steep.features.batches.batch import Batch

log = logging.getLogger("steep.batch")


@dataclass(slots=True)
class _Record:
    id: str
    kind: str
    description: str
    meta: dict[str, Any]
    parent: str | None
    steps: int | None
    on_complete: Signature | None
    on_success: Signature | None
    created_at: float = field(default_factory=time.time)
    members: dict[str, str] = field(default_factory=dict)  # id -> p / s / f
    results: dict[int, Any] = field(default_factory=dict)
    closed_at: float | None = None
    complete_at: float | None = None
    success_at: float | None = None
    callbacks_done: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for state in self.members.values() if state == outcome)


class LocalBatches:
    """The batches of one inline or fake mode (steep.features.batches.batch.LocalBatches).

    `push(envelopes)` hands jobs to the mode and returns their handles."""

    def __init__(self, push: Callable[[list[Envelope], list[bytes]], list[Job]]) -> None:
        self._push = push
        self._batches: dict[str, _Record] = {}
        self._handles: dict[str, Job] = {}

    # -- what Batch asks -----------------------------------------------------------

    def create(self, batch: Batch) -> None:
        self._batches.setdefault(
            batch.id,
            _Record(
                batch.id,
                batch.kind,
                batch.description,
                dict(batch.meta),
                batch.parent,
                batch.steps,
                batch.on_complete,
                batch.on_success,
            ),
        )

    def add(self, batch_id: str, envelopes: list[Envelope]) -> None:
        record = self._get(batch_id)
        fresh = [e for e in envelopes if e.id not in record.members]
        for envelope in fresh:
            record.members[envelope.id] = "p"
        self.push(fresh)

    def close(self, batch: Batch) -> None:
        record = self._get(batch.id)
        if record.parent:
            self._get(record.parent).members.setdefault(batch.id, "p")
        if record.closed_at is None:
            record.closed_at = time.time()
        self._settled(record)

    def discard(self, batch_id: str) -> None:
        self._batches.pop(batch_id, None)

    def status(self, batch_id: str) -> BatchStatus | None:
        record = self._batches.get(batch_id)
        if record is None:
            return None
        pending, failed = record.count("p"), record.count("f")
        if record.closed_at is None:
            state = "open"
        elif pending or record.complete_at is None:
            state = "running"
        else:
            state = "failed" if failed else "succeeded"
        return BatchStatus(
            id=record.id,
            kind=record.kind,
            state=state,
            description=record.description,
            meta=record.meta,
            total=len(record.members),
            pending=pending,
            succeeded=record.count("s"),
            failed=failed,
            failed_ids=sorted(i for i, s in record.members.items() if s == "f"),
            created_at=record.created_at,
            closed_at=record.closed_at,
            complete_at=record.complete_at,
            success_at=record.success_at,
            parent=record.parent,
            steps=record.steps,
            on_complete=record.on_complete.name if record.on_complete else None,
            on_success=record.on_success.name if record.on_success else None,
            callbacks_done=list(record.callbacks_done),
        )

    def results(self, batch_id: str) -> list[Any]:
        found = self._get(batch_id).results
        return [found.get(i) for i in range(max(found) + 1)] if found else []

    def handle(self, job_id: str) -> Job | None:
        return self._handles.get(job_id)

    def member(self, envelope: Envelope) -> Job:
        return _Member(envelope, self)

    def statuses(self) -> list[BatchStatus]:
        """Every batch's status, oldest first."""
        return [s for s in map(self.status, list(self._batches)) if s is not None]

    # -- what the mode tells -------------------------------------------------------

    def push(self, envelopes: list[Envelope]) -> None:
        """Give jobs to the mode, through the enqueue middleware, as delivery.push does."""
        if not envelopes:
            return
        chain = middleware.chains()[0]
        with middleware.around_enqueue(chain, envelopes) if chain else contextlib.nullcontext():
            handles = self._push(envelopes, [encode_envelope(e) for e in envelopes])
        for envelope, handle in zip(envelopes, handles, strict=True):
            self._handles[envelope.id] = handle

    def finished(self, envelope: Envelope, ok: bool, value: Any = None) -> None:
        """A job ran to its end (succeeded, or died: inline mode does not retry)."""
        meta = envelope.meta or {}
        callback = meta.get("batch_cb")
        if callback:
            record = self._batches.get(callback[0])
            if ok and record is not None and callback[1] not in record.callbacks_done:
                record.callbacks_done.append(callback[1])
            return
        batch_id = meta.get("batch")
        record = self._batches.get(batch_id) if batch_id else None
        if record is None:
            return
        outcome = "f"
        if ok:
            outcome = "s"
            rest = meta.get("chain")
            if rest and not self._next_step(envelope, record, value, rest):
                outcome = "f"
            elif (position := meta.get("batch_i")) is not None:
                record.results[position] = _kept(value, envelope, record.id)
        self._record(record, envelope.id, outcome)

    # -- the bookkeeping -----------------------------------------------------------

    def _get(self, batch_id: str) -> _Record:
        record = self._batches.get(batch_id)
        if record is None:
            raise BatchError(f"no batch {batch_id} (never made, or expired)")
        return record

    def _next_step(self, env: Envelope, record: _Record, value: Any, rest: list[Any]) -> bool:
        nxt = next_step(env, record.id, value, rest)
        if nxt is not None:
            self.add(record.id, [nxt])
        return nxt is not None

    def _record(self, record: _Record, member: str, outcome: str) -> None:
        current = record.members.get(member)
        if current is None or current == "s" or (current == "f" and outcome == "f"):
            return
        record.members[member] = outcome
        self._settled(record)

    def _settled(self, record: _Record) -> None:
        """What batch_record decides once a closed batch has no pending member."""
        if record.closed_at is None or record.count("p"):
            return
        ok = record.count("f") == 0
        fire: list[str] = []
        tell_parent = None
        if record.complete_at is None:
            record.complete_at = time.time()
            fire.append("complete")
            tell_parent = "s" if ok else "f"
        if ok and record.success_at is None:
            record.success_at = time.time()
            fire.append("success")
            tell_parent = "s"
        for kind in fire:
            self._fire(record, kind)
        if record.parent and tell_parent and record.parent in self._batches:
            self._record(self._batches[record.parent], record.id, tell_parent)

    def _fire(self, record: _Record, kind: str) -> None:
        sig = record.on_complete if kind == "complete" else record.on_success
        if sig is None:
            return
        if kind == "success" and record.kind == "group":
            first: Any = self.results(record.id)
        else:
            status = self.status(record.id)
            first = status.as_dict() if status else {"id": record.id}
        self.push(
            [
                member_envelope(
                    sig.with_first(first),
                    derived_id(record.id, kind),
                    {"batch_cb": [record.id, kind]},
                )
            ]
        )


def _kept(value: Any, envelope: Envelope, batch_id: str) -> Any:
    """A kept result as the server would give it back: through JSON."""
    try:
        return json.loads(encode(value))
    except (TypeError, msgspec.EncodeError, OverflowError):
        log.error("job %s: its return value cannot be kept for batch %s", envelope.id, batch_id)
        return None


class _Member(Job):
    """The handle `Batch.add` returns: the job is enqueued when the block ends, so it
    answers through the handle the mode gives it then."""

    __slots__ = ("_local",)

    def __init__(self, envelope: Envelope, local: LocalBatches) -> None:
        super().__init__(envelope.id, envelope.queue, envelope.name, keeps_result=True)
        self._local = local

    @property
    def status(self) -> JobStatus | None:
        handle = self._local.handle(self.id)
        return JobStatus.QUEUED if handle is None else handle.status

    def result(self, timeout: float | None = None) -> Any:
        handle = self._local.handle(self.id)
        if handle is None:
            raise TimeoutError(f"job {self.id} ({self.name}) has not run: its batch is open")
        return handle.result(timeout)

    async def aresult(self, timeout: float | None = None) -> Any:
        return self.result(timeout)
