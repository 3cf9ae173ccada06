"""Queues: sizes, latency, pause and resume, clear.

Each queue is read with a handful of O(1) commands in one pipeline; nothing
here walks a queue's contents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from steep.connection import SCRIPTS, get_keys
from steep.features.priority import WAKE_TOKEN
from steep.job import decode_envelope
from steep.ops._util import client_or_default


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    size: int  # waiting to run now
    scheduled: int  # scheduled for later, or waiting to retry
    dead: int
    oldest_age: float | None  # seconds the next job to run has waited (the queue's latency)
    paused: bool
    processed: int
    failed: int
    # ids found in the queue without an envelope (deleted or settled meanwhile), dropped
    missing: int = 0


def queue_names(client: redis.Redis | None = None) -> list[str]:
    client = client_or_default(client)
    return sorted(q.decode() for q in client.smembers(get_keys().queues))  # type: ignore[union-attr]


def queues(client: redis.Redis | None = None) -> list[QueueInfo]:
    """Every known queue, sorted by name."""
    client = client_or_default(client)
    return _read(client, queue_names(client))


def queue(name: str, client: redis.Redis | None = None) -> QueueInfo:
    """One queue (an unknown name reads as an empty queue)."""
    return _read(client_or_default(client), [name])[0]


def _read(client: redis.Redis, names: list[str]) -> list[QueueInfo]:
    keys = get_keys()
    pipe = client.pipeline(transaction=False)
    for name in names:
        qk = keys.queue(name)
        pipe.llen(qk.queued)
        pipe.zcard(qk.scheduled)
        pipe.zcard(qk.dead)
        pipe.lindex(qk.queued, -1)
        pipe.exists(qk.paused)
        pipe.hmget(qk.stats, "processed", "failed", "missing")
        pipe.zcard(qk.prioritized)
        # the token is pushed on an empty list, so it sits at (or near) the consumer end
        pipe.lpos(qk.queued, WAKE_TOKEN, rank=-1, maxlen=1000)
    raw = pipe.execute()
    heads = [(name, raw[i * 8 + 3]) for i, name in enumerate(names)]
    oldest = _enqueued_times(client, heads)
    out = []
    now = time.time()
    for i, name in enumerate(names):
        size, scheduled, dead, _, paused, (processed, failed, missing), prioritized, token = raw[
            i * 8 : i * 8 + 8
        ]
        # jobs with a priority wait in their own set; a wake-up token is no job
        size += prioritized - (token is not None)
        enqueued = oldest.get(name)
        out.append(
            QueueInfo(
                name,
                size,
                scheduled,
                dead,
                None if enqueued is None else max(0.0, now - enqueued),
                bool(paused),
                int(processed or 0),
                int(failed or 0),
                int(missing or 0),
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


def pause(name: str, client: redis.Redis | None = None) -> None:
    """Workers take no job from the queue until it is resumed (running jobs finish)."""
    client_or_default(client).set(get_keys().queue(name).paused, str(time.time()))


def resume(name: str, client: redis.Redis | None = None) -> None:
    client_or_default(client).delete(get_keys().queue(name).paused)


def clear(name: str, client: redis.Redis | None = None, batch: int = 1000) -> int:
    """Delete every job waiting in the queue (not scheduled, retrying, running or dead).

    Works in batches of `batch` jobs, one script call each, so a queue of
    millions never blocks the server for long. Returns the number deleted.
    """
    client = client_or_default(client)
    qk = get_keys().queue(name)
    total = 0
    while True:
        keys = [qk.queued, qk.jobs, qk.state, qk.prioritized]
        dropped = int(SCRIPTS.clear(client, keys, [batch]))
        total += dropped
        if dropped == 0:
            return total
