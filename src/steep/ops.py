"""Read-side operations: what is queued, who is working, how much got done.

The CLI's `steep status` (and later the dashboard) read through here, never
Redis directly.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from steep.connection import get_client, get_keys
from steep.job import decode_envelope


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    size: int  # waiting to run now
    scheduled: int  # scheduled for later, or waiting to retry
    dead: int
    oldest_age: float | None  # seconds the next job to run has waited
    paused: bool
    processed: int
    failed: int


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started: float
    last_beat: float
    busy: int
    rss: int
    processed: int
    failed: int
    quiet: bool
    running: list[dict[str, Any]] = field(default_factory=list)


def queue_names(client: redis.Redis | None = None) -> list[str]:
    client = client or get_client()
    return sorted(q.decode() for q in client.smembers(get_keys().queues))  # type: ignore[union-attr]


def queues(client: redis.Redis | None = None) -> list[QueueInfo]:
    client = client or get_client()
    keys = get_keys()
    names = queue_names(client)
    pipe = client.pipeline(transaction=False)
    for name in names:
        qk = keys.queue(name)
        pipe.llen(qk.queued)
        pipe.zcard(qk.scheduled)
        pipe.zcard(qk.dead)
        pipe.lindex(qk.queued, -1)
        pipe.exists(qk.paused)
        pipe.hmget(qk.stats, "processed", "failed")
    raw = pipe.execute()
    heads = [(name, raw[i * 6 + 3]) for i, name in enumerate(names)]
    oldest = _enqueued_times(client, heads)
    out = []
    for i, name in enumerate(names):
        size, scheduled, dead, _, paused, (processed, failed) = raw[i * 6 : i * 6 + 6]
        enqueued = oldest.get(name)
        out.append(
            QueueInfo(
                name,
                size,
                scheduled,
                dead,
                None if enqueued is None else max(0.0, time.time() - enqueued),
                bool(paused),
                int(processed or 0),
                int(failed or 0),
            )
        )
    return out


def _enqueued_times(client: redis.Redis, heads: list[tuple[str, bytes | None]]) -> dict[str, float]:
    keys = get_keys()
    present = [(name, job_id) for name, job_id in heads if job_id]
    pipe = client.pipeline(transaction=False)
    for name, job_id in present:
        pipe.hget(keys.queue(name).jobs, job_id)  # type: ignore[arg-type]
    times = {}
    for (name, _), payload in zip(present, pipe.execute(), strict=True):
        if payload:
            try:
                times[name] = decode_envelope(payload).enqueued_at
            except Exception:  # a malformed envelope has no age to show
                continue
    return times


def workers(client: redis.Redis | None = None) -> list[WorkerInfo]:
    client = client or get_client()
    keys = get_keys()
    entries = client.zrange(keys.workers, 0, -1, withscores=True)
    pipe = client.pipeline(transaction=False)
    for worker_id, _ in entries:
        pipe.hgetall(keys.worker(worker_id.decode()))
    out = []
    for (worker_id, beat_ms), info in zip(entries, pipe.execute(), strict=True):
        h = {k.decode(): v.decode() for k, v in info.items()}
        out.append(
            WorkerInfo(
                id=worker_id.decode(),
                host=h.get("host", "?"),
                pid=int(h.get("pid", 0)),
                queues=json.loads(h.get("queues", "[]")),
                concurrency=int(h.get("concurrency", 0)),
                started=float(h.get("started", 0)),
                last_beat=beat_ms / 1000,
                busy=int(h.get("busy", 0)),
                rss=int(h.get("rss", 0)),
                processed=int(h.get("processed", 0)),
                failed=int(h.get("failed", 0)),
                quiet=h.get("quiet") == "1",
                running=[
                    {"queue": q, "id": j, "started": s}
                    for q, j, s in json.loads(h.get("running", "[]"))
                ],
            )
        )
    return out


def totals(queue_infos: list[QueueInfo]) -> dict[str, int]:
    return {
        "processed": sum(q.processed for q in queue_infos),
        "failed": sum(q.failed for q in queue_infos),
        "queued": sum(q.size for q in queue_infos),
        "scheduled": sum(q.scheduled for q in queue_infos),
        "dead": sum(q.dead for q in queue_infos),
    }


def status(client: redis.Redis | None = None) -> dict[str, Any]:
    """Everything `steep status` shows, as plain data."""
    client = client or get_client()
    qs = queues(client)
    ws = workers(client)
    return {
        "queues": [asdict(q) for q in qs],
        "workers": [asdict(w) for w in ws],
        "totals": {**totals(qs), "busy": sum(w.busy for w in ws), "workers": len(ws)},
    }
