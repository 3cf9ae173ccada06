"""Batches: a set of jobs tracked together, with callbacks when they are all done.

    with steep.batch(description="import", on_complete=report.s(), on_success=mail.s()) as b:
        for row in rows:
            b.add(import_row.s(row))

A batch is *open* while jobs are added; leaving the `with` block closes it (its total
is final then, unless a member adds more). `on_complete` is enqueued once every
member has succeeded or died; `on_success` once every member has succeeded. Both get
the batch's status (a dict) as their first argument. The bookkeeping lives under one
hash tag per batch (`<ns>:batch:{<id>}`); members are recorded by the worker's batch
hook (steep.features.batches.hook) before their own settlement. See docs/batches.md.

This module is the user-facing side: `Batch`, `batch()` and `current_batch()`. The
stored record and its status are in records.py, the ids fixed in advance in ids.py,
enqueueing members and delivering callbacks in delivery.py.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from steep.connection import SCRIPTS, get_client, get_keys
from steep.context import current_job
from steep.features.batches.delivery import deliver, member_envelope, push
from steep.features.batches.ids import derived_id, mint_id
from steep.features.batches.records import (
    BatchError,
    BatchStatus,
    add_members,
    get_results,
    get_status,
    record,
    unfinished,
)
from steep.features.batches.workflow import Signature
from steep.job import Envelope, Job, encode_envelope

DEFAULT_TTL = 7 * 86400  # seconds a completed batch's record is kept
INDEX_CAP = 10_000  # batches listed by steep.ops (the record itself expires on its own)
FLUSH_EVERY = 1000  # buffered adds written per round trip
_AUTO: Any = object()


class LocalBatches(Protocol):
    """Where batches live instead of Redis while a test mode runs jobs in this process
    (steep.testing); Batch hands every read and write of its record to it."""

    def create(self, batch: Batch) -> None: ...
    def add(self, batch_id: str, envelopes: list[Envelope]) -> None: ...
    def close(self, batch: Batch) -> None: ...
    def discard(self, batch_id: str) -> None: ...
    def status(self, batch_id: str) -> BatchStatus | None: ...
    def results(self, batch_id: str) -> list[Any]: ...
    def handle(self, job_id: str) -> Job | None: ...
    def member(self, envelope: Envelope) -> Job: ...


_local: LocalBatches | None = None


def set_local(store: LocalBatches | None) -> LocalBatches | None:
    """Keep batches in `store` instead of Redis (None: in Redis again); the previous."""
    global _local
    previous, _local = _local, store
    return previous


class Batch:
    """A batch being built (the `with` block) or an existing one reopened to add to.

    `parent`: by default a batch made inside a job that is itself a batch member is a
    child of that job's batch (the parent counts it as one member, done when the child
    completes); pass a batch id, or None for no parent.
    """

    def __init__(
        self,
        *,
        description: str = "",
        meta: dict[str, Any] | None = None,
        on_complete: Signature | None = None,
        on_success: Signature | None = None,
        parent: str | None = _AUTO,
        ttl: int = DEFAULT_TTL,
        kind: str = "batch",
        keep_results: bool = False,
        id: str | None = None,
    ) -> None:
        for name, cb in (("on_complete", on_complete), ("on_success", on_success)):
            if cb is not None and not isinstance(cb, Signature):
                raise TypeError(f"{name} must be a signature (job.s(...)), got {cb!r}")
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.id = id or mint_id()
        self.description = description
        self.meta = meta or {}
        self.on_complete = on_complete
        self.on_success = on_success
        if parent is _AUTO:
            ctx = current_job()
            parent = ctx.meta.get("batch") if ctx is not None and ctx.meta else None
        self.parent: str | None = parent
        self.ttl = ttl
        self.kind = kind
        self.keep_results = keep_results
        self.steps: int | None = None
        self._existing = False
        self._created = False
        self._closed = False
        self._flushed = 0
        self._position = 0
        self._buffer: list[Envelope] = []
        json.dumps(self.meta)  # meta must be JSON: fail here, not in a worker

    def __repr__(self) -> str:
        return f"<Batch {self.id} {self.kind}>"

    @classmethod
    def open(cls, batch_id: str) -> Batch:
        """An existing batch, to add members to (`with Batch.open(id) as b: b.add(...)`).
        Leaving the block enqueues what was added; it does not close anything."""
        b = cls(id=batch_id, parent=None)
        b._existing = b._created = True
        return b

    # -- building --------------------------------------------------------------------

    def __enter__(self) -> Batch:
        if self._closed:
            raise BatchError(f"batch {self.id} is already closed; add with Batch.open(id)")
        self._create()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            # nothing buffered is enqueued; what was already enqueued stays a batch
            self._buffer.clear()
            if not self._existing and not self._flushed:
                self._discard()
                self._closed = True
                return
        self.flush()
        if not self._existing:
            self.close()

    def add(self, sig: Signature, *, chain_rest: list[Signature] | None = None) -> Job:
        """Add one job call; it is enqueued when the block ends (or every 1,000 adds)."""
        if not isinstance(sig, Signature):
            raise TypeError(f"add a signature (job.s(...)), got {sig!r}")
        if self._closed:
            raise BatchError(f"batch {self.id} is closed; add with Batch.open(id)")
        meta: dict[str, Any] = {"batch": self.id}
        if self.keep_results and not self._existing:
            meta["batch_i"] = self._position
            self._position += 1
        if chain_rest:
            meta["chain"] = [s.to_dict() for s in chain_rest]
        envelope = member_envelope(sig, mint_id(), meta)
        encode_envelope(envelope)  # an argument that cannot be encoded fails here
        self._buffer.append(envelope)
        if len(self._buffer) >= FLUSH_EVERY:
            self.flush()
        if _local is not None:
            return _local.member(envelope)
        return Job(envelope.id, envelope.queue, sig.name)

    def flush(self) -> None:
        """Register the buffered members, then enqueue them."""
        if not self._buffer:
            return
        self._create()
        buffered, self._buffer = self._buffer, []
        if _local is not None:
            _local.add(self.id, buffered)
            self._flushed += len(buffered)
            return
        client = get_client()
        added = add_members(client, self.id, [e.id for e in buffered])
        if added < len(buffered):
            buffered = unfinished(client, self.id, buffered)
        push(client, buffered)
        self._flushed += len(buffered)

    def close(self) -> None:
        """The total is final: the batch completes once its pending members are done."""
        self.flush()
        self._create()
        if _local is not None:
            self._closed = True
            _local.close(self)
            return
        client = get_client()
        if self.parent:
            add_members(client, self.parent, [self.id])
        outbox = record(client, self.id, [], close=True)
        self._closed = True
        if outbox:
            deliver(client, self.id, outbox)

    def _create(self) -> None:
        if self._created:
            return
        if _local is not None:
            _local.create(self)
            self._created = True
            return
        now_ms = int(time.time() * 1000)
        fields: dict[str, Any] = {
            "kind": self.kind,
            "description": self.description,
            "meta": json.dumps(self.meta),
            "created_at": now_ms,
            "ttl": self.ttl,
            "total": 0,
            "pending": 0,
            "succeeded": 0,
            "failed": 0,
        }
        if self.parent:
            fields["parent"] = self.parent
        if self.steps:
            fields["steps"] = self.steps
        if self.on_complete is not None:
            fields["on_complete"] = json.dumps(self.on_complete.to_dict())
        if self.on_success is not None:
            fields["on_success"] = json.dumps(self.on_success.to_dict())
        if self.kind == "group":
            fields["callback_args"] = "results"
        argv = [x for pair in fields.items() for x in pair]
        client = get_client()
        keys = get_keys()
        if SCRIPTS.named("batch_create")(client, [keys.batch(self.id).info], argv):
            pipe = client.pipeline(transaction=False)
            pipe.zadd(keys.batches, {self.id: now_ms})
            pipe.zremrangebyrank(keys.batches, 0, -INDEX_CAP - 1)
            pipe.execute()
        self._created = True

    def _discard(self) -> None:
        if _local is not None:
            _local.discard(self.id)
            self._created = False
            return
        client = get_client()
        keys = get_keys()
        client.delete(*keys.batch(self.id).all())
        client.zrem(keys.batches, self.id)
        self._created = False

    # -- reading ---------------------------------------------------------------------

    def status(self) -> BatchStatus | None:
        return get_status(self.id) if _local is None else _local.status(self.id)

    def results(self) -> list[Any]:
        """Return values of a group's members (or a chain's steps), in order."""
        return get_results(self.id) if _local is None else _local.results(self.id)

    def callback_job(self, kind: str = "success") -> Job:
        """The handle of the `complete` or `success` callback (its id is fixed by the
        batch's), to wait on its result: `b.callback_job().result(timeout=10)`."""
        sig = {"complete": self.on_complete, "success": self.on_success}.get(kind)
        if sig is None:
            raise BatchError(f"batch {self.id} has no on_{kind} callback")
        job_id = derived_id(self.id, kind)
        if _local is not None and (handle := _local.handle(job_id)) is not None:
            return handle
        return Job(job_id, sig.options.get("queue", "default"), sig.name)

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> BatchStatus:
        """Poll until the batch is complete (every member succeeded or died) and its
        callbacks are enqueued; raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status is None:
                raise BatchError(f"no batch {self.id} (never made, or expired)")
            if status.state in ("succeeded", "failed") and not status.outbox:
                return status
            if _local is not None:  # nothing runs meanwhile in this process
                raise TimeoutError(
                    f"batch {self.id} has not completed: {status.pending} of its "
                    f"{status.total} jobs have not run (in fake mode, jobs.drain() runs them)"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {self.id} did not complete within {timeout} s")
            time.sleep(interval)


def batch(
    *,
    description: str = "",
    meta: dict[str, Any] | None = None,
    on_complete: Signature | None = None,
    on_success: Signature | None = None,
    parent: str | None = _AUTO,
    ttl: int = DEFAULT_TTL,
) -> Batch:
    """A new batch: `with steep.batch(...) as b: b.add(job.s(...))`."""
    return Batch(
        description=description,
        meta=meta,
        on_complete=on_complete,
        on_success=on_success,
        parent=parent,
        ttl=ttl,
    )


def current_batch() -> Batch | None:
    """The batch of the job running now, reopened to add members to, or None."""
    ctx = current_job()
    if ctx is None or not ctx.meta or "batch" not in ctx.meta:
        return None
    return Batch.open(ctx.meta["batch"])
