"""The batch's record in Redis: reading it back as a status, and writing to it.

Everything of one batch lives under one hash tag (`<ns>:batch:{<id>}`): its info hash,
its members (id -> outcome), the failed ones and the kept results. Members are added
with batch_add.lua and their outcomes recorded with batch_record.lua, which decides in
the same step what must follow (callbacks, telling the parent) and leaves it in the
batch's outbox for steep.features.batches.delivery to carry out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from steep.connection import SCRIPTS, get_client, get_keys
from steep.job import Envelope


class BatchError(Exception):
    """A batch cannot be used as asked; the message says why."""


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


def add_members(client: redis.Redis, batch_id: str, member_ids: list[str]) -> int:
    if not member_ids:
        return 0
    added = int(SCRIPTS.named("batch_add")(client, get_keys().batch(batch_id).all(), member_ids))
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
    out = SCRIPTS.named("batch_record")(client, get_keys().batch(batch_id).all(), argv)
    return out.decode() if isinstance(out, bytes) else (out or "")
