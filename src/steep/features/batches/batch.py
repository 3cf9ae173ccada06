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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from steep import middleware
from steep.connection import SCRIPTS, get_client, get_keys
from steep.context import JobContext, current_job
from steep.features.batches.workflow import Signature
from steep.job import Envelope, Job, encode_envelope, new_job_id

log = logging.getLogger("steep.batch")

DEFAULT_TTL = 7 * 86400  # seconds a completed batch's record is kept
INDEX_CAP = 10_000  # batches listed by steep.ops (the record itself expires on its own)
FLUSH_EVERY = 1000  # buffered adds written per round trip
_AUTO: Any = object()


class BatchError(Exception):
    """A batch cannot be used as asked; the message says why."""


def derived_id(seed: str, label: str) -> str:
    """A job or batch id fixed by `seed` and `label`, so a call made again after a
    crash names the same thing (and adds or enqueues nothing twice). It keeps the
    seed's time prefix, so it still sorts and dates like a steep id."""
    digest = hashlib.sha1(f"{seed}:{label}".encode()).hexdigest()
    if len(seed) == 26 and all(c in "0123456789abcdef" for c in seed[:14]):
        return seed[:14] + digest[:12]
    return digest[:26]


# per running job: (its context, how many ids it has minted in this run)
_minted: OrderedDict[str, tuple[JobContext, int]] = OrderedDict()
_minted_lock = threading.Lock()


def mint_id() -> str:
    """A new id; inside a job, the n-th id that run mints is fixed by the job's id, so a
    job that runs again (crash, retry) makes the same batches and members."""
    ctx = current_job()
    if ctx is None:
        return new_job_id()
    with _minted_lock:  # jobs in several threads mint at once
        entry = _minted.get(ctx.id)
        count = entry[1] + 1 if entry is not None and entry[0] is ctx else 1
        _minted[ctx.id] = (ctx, count)
        _minted.move_to_end(ctx.id)
        while len(_minted) > 4096:
            _minted.popitem(last=False)
    return derived_id(ctx.id, f"mint:{count}")


@dataclass(slots=True)
class BatchStatus:
    """A batch's progress as stored now."""

    id: str
    kind: str  # batch, group or chain
    state: str  # open, running, succeeded, failed (complete with dead members)
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    total: int = 0
    pending: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)
    created_at: float | None = None
    closed_at: float | None = None
    complete_at: float | None = None
    success_at: float | None = None
    parent: str | None = None
    steps: int | None = None  # chains: how many steps in all
    on_complete: str | None = None  # the callbacks' job names
    on_success: str | None = None
    callbacks_done: list[str] = field(default_factory=list)  # complete / success, ran OK
    outbox: list[dict[str, Any]] = field(default_factory=list)  # decided, not yet sent

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """What callbacks get (JSON)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "meta": self.meta,
            "total": self.total,
            "pending": self.pending,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failed_ids": self.failed_ids,
        }


def _ms(raw: bytes | None) -> float | None:
    return int(raw) / 1000 if raw else None


def get_status(batch_id: str, client: redis.Redis | None = None) -> BatchStatus | None:
    """The batch's status, or None when steep holds no record of it (expired)."""
    client = client or get_client()
    bk = get_keys().batch(batch_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(bk.info)
    pipe.smembers(bk.failed)
    raw, failed_ids = pipe.execute()
    if not raw:
        return None
    f = {k.decode(): v for k, v in raw.items()}

    def num(name: str) -> int:
        return int(f.get(name, b"0"))

    def callback_name(kind: str) -> str | None:
        sig = f.get(f"on_{kind}")
        return json.loads(sig)["name"] if sig else None

    closed, complete, success = _ms(f.get("closed_at")), _ms(f.get("complete_at")), None
    success = _ms(f.get("success_at"))
    pending = num("pending")
    if closed is None:
        state = "open"
    elif pending > 0 or complete is None:
        state = "running"
    else:
        state = "succeeded" if num("failed") == 0 else "failed"
    return BatchStatus(
        id=batch_id,
        kind=f.get("kind", b"batch").decode(),
        state=state,
        description=f.get("description", b"").decode(),
        meta=json.loads(f.get("meta", b"{}")),
        total=num("total"),
        pending=pending,
        succeeded=num("succeeded"),
        failed=num("failed"),
        failed_ids=sorted(i.decode() for i in failed_ids),
        created_at=_ms(f.get("created_at")),
        closed_at=closed,
        complete_at=complete,
        success_at=success,
        parent=f["parent"].decode() if f.get("parent") else None,
        steps=num("steps") or None,
        on_complete=callback_name("complete"),
        on_success=callback_name("success"),
        callbacks_done=[k for k in ("complete", "success") if f.get(f"cb:{k}") == b"done"],
        outbox=json.loads(f["outbox"]) if f.get("outbox") else [],
    )


def get_results(batch_id: str, client: redis.Redis | None = None) -> list[Any]:
    """The members' return values in their order (groups and chains keep them)."""
    client = client or get_client()
    raw = client.hgetall(get_keys().batch(batch_id).results)
    by_pos = {int(k): json.loads(v) for k, v in raw.items()}
    return [by_pos.get(i) for i in range(max(by_pos) + 1)] if by_pos else []


# -- writing ------------------------------------------------------------------------


def member_envelope(sig: Signature, job_id: str, meta: dict[str, Any]) -> Envelope:
    from steep import client as steep_client

    envelope = steep_client._envelope(sig.name, sig.job_options(), sig.args, sig.kwargs)
    envelope.id = job_id
    envelope.meta = meta
    return envelope


def push(client: redis.Redis, envelopes: list[Envelope]) -> None:
    """Enqueue envelopes (ids fixed in advance: enqueue.lua never adds an id twice)."""
    from steep import client as steep_client

    if not envelopes:
        return
    chain = middleware.chains()[0]
    with middleware.around_enqueue(chain, envelopes) if chain else contextlib.nullcontext():
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for envelope in envelopes:
            by_queue[envelope.queue] += (envelope.id, encode_envelope(envelope), 0)
        for queue, argv in by_queue.items():
            queues_key = steep_client._note_queue(queue)
            if queues_key is not None:
                client.sadd(queues_key, queue)
            SCRIPTS.enqueue(client, steep_client._queue_keys(queue), argv)


def add_members(client: redis.Redis, batch_id: str, member_ids: list[str]) -> int:
    if not member_ids:
        return 0
    added = int(SCRIPTS.batch_add(client, get_keys().batch(batch_id).all(), member_ids))
    if added < 0:
        raise BatchError(f"no batch {batch_id} (never made, or expired)")
    return added


def unfinished(client: redis.Redis, batch_id: str, envelopes: list[Envelope]) -> list[Envelope]:
    """The members not yet finished. A job that runs again after a crash adds the same
    members (same ids); those that already ran and settled are not enqueued again."""
    states = client.hmget(get_keys().batch(batch_id).members, [e.id for e in envelopes])
    return [e for e, state in zip(envelopes, states, strict=True) if state in (None, b"p")]


def record(
    client: redis.Redis,
    batch_id: str,
    items: list[tuple[str, str, int | None, bytes | str | None]],
    close: bool = False,
) -> str:
    """Record members' outcomes (`s` or `f`); returns the batch's outbox ('' if empty)."""
    argv: list[Any] = [int(time.time() * 1000), "1" if close else "0"]
    for member, outcome, position, value in items:
        argv += (member, outcome, "" if position is None else position, value or "")
    out = SCRIPTS.batch_record(client, get_keys().batch(batch_id).all(), argv)
    return out.decode() if isinstance(out, bytes) else (out or "")


def deliver(client: redis.Redis, batch_id: str, outbox: str) -> None:
    """Do what batch_record decided: enqueue callbacks, tell the parent batch; then
    clear the outbox. Safe to repeat: callback ids are fixed by batch id and kind."""
    entries = json.loads(outbox)
    info = get_keys().batch(batch_id).info
    for entry in entries:
        if "cb" in entry:
            _fire(client, batch_id, entry["cb"])
        elif "parent" in entry:
            upstream = record(client, entry["parent"], [(batch_id, entry["outcome"], None, None)])
            if upstream:
                deliver(client, entry["parent"], upstream)
    SCRIPTS.batch_sent(client, [info], [outbox])


def _fire(client: redis.Redis, batch_id: str, kind: str) -> None:
    bk = get_keys().batch(batch_id)
    raw = client.hmget(bk.info, f"on_{kind}", "callback_args")
    if raw[0] is None:
        return
    sig = Signature.from_dict(json.loads(raw[0]))
    if kind == "success" and raw[1] == b"results":
        first: Any = get_results(batch_id, client)
    else:
        status = get_status(batch_id, client)
        first = status.as_dict() if status else {"id": batch_id}
    envelope = member_envelope(
        sig.with_first(first), derived_id(batch_id, kind), {"batch_cb": [batch_id, kind]}
    )
    push(client, [envelope])
    log.info(
        "batch %s: %s callback %s enqueued as %s",
        batch_id,
        kind,
        sig.name,
        envelope.id,
        extra={"batch": batch_id, "event": f"batch_{kind}", "job_id": envelope.id},
    )


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
        return Job(envelope.id, envelope.queue, sig.name)

    def flush(self) -> None:
        """Register the buffered members, then enqueue them."""
        if not self._buffer:
            return
        self._create()
        client = get_client()
        buffered, self._buffer = self._buffer, []
        added = add_members(client, self.id, [e.id for e in buffered])
        if added < len(buffered):
            buffered = unfinished(client, self.id, buffered)
        push(client, buffered)
        self._flushed += len(buffered)

    def close(self) -> None:
        """The total is final: the batch completes once its pending members are done."""
        self.flush()
        self._create()
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
        if SCRIPTS.batch_create(client, [keys.batch(self.id).info], argv):
            pipe = client.pipeline(transaction=False)
            pipe.zadd(keys.batches, {self.id: now_ms})
            pipe.zremrangebyrank(keys.batches, 0, -INDEX_CAP - 1)
            pipe.execute()
        self._created = True

    def _discard(self) -> None:
        client = get_client()
        keys = get_keys()
        client.delete(*keys.batch(self.id).all())
        client.zrem(keys.batches, self.id)
        self._created = False

    # -- reading ---------------------------------------------------------------------

    def status(self) -> BatchStatus | None:
        return get_status(self.id)

    def results(self) -> list[Any]:
        """Return values of a group's members (or a chain's steps), in order."""
        return get_results(self.id)

    def callback_job(self, kind: str = "success") -> Job:
        """The handle of the `complete` or `success` callback (its id is fixed by the
        batch's), to wait on its result: `b.callback_job().result(timeout=10)`."""
        sig = {"complete": self.on_complete, "success": self.on_success}.get(kind)
        if sig is None:
            raise BatchError(f"batch {self.id} has no on_{kind} callback")
        return Job(derived_id(self.id, kind), sig.options.get("queue", "default"), sig.name)

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
