"""Stats: totals, daily history, and per job name per minute metrics.

Daily counters live in each queue's `stats` hash (`processed:<day>`); the
workers write one hash per queue and minute (`metrics:<YYYYmmddHHMM>`, 48 h
expiry) with counts, failures, run time and a power-of-two run-time histogram
per job name, so memory stays bounded whatever the traffic.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from steep.connection import get_keys
from steep.ops._util import client_or_default, utc_day, utc_minute
from steep.ops.queues import QueueInfo, queue_names, queues
from steep.ops.workers import workers


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
    client = client_or_default(client)
    qs = queues(client)
    ws = workers(client)
    return {
        "queues": [asdict(q) for q in qs],
        "workers": [asdict(w) for w in ws],
        "totals": {**totals(qs), "busy": sum(w.busy for w in ws), "workers": len(ws)},
    }


def history(days: int = 30, client: redis.Redis | None = None) -> list[dict[str, Any]]:
    """Processed and failed per UTC day, oldest first, over every queue."""
    client = client_or_default(client)
    now = time.time()
    day_names = [utc_day(now - 86400 * i) for i in range(days - 1, -1, -1)]
    fields = [f"processed:{d}" for d in day_names] + [f"failed:{d}" for d in day_names]
    pipe = client.pipeline(transaction=False)
    keys = get_keys()
    for name in queue_names(client):
        pipe.hmget(keys.queue(name).stats, fields)
    processed = [0] * days
    failed = [0] * days
    for values in pipe.execute():
        for i in range(days):
            processed[i] += int(values[i] or 0)
            failed[i] += int(values[days + i] or 0)
    return [
        {"day": d, "processed": processed[i], "failed": failed[i]} for i, d in enumerate(day_names)
    ]


@dataclass(slots=True)
class JobMetrics:
    """Runs of one job name over a window of minutes."""

    name: str
    count: int = 0
    failed: int = 0
    total_ms: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)
    # per minute, oldest first: (minute epoch seconds, count, failed)
    series: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.count if self.count else None

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.buckets, 0.50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.buckets, 0.95)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "failed": self.failed,
            "mean_ms": self.mean_ms,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "series": self.series,
        }


def percentile(buckets: dict[int, int], q: float) -> float | None:
    """Estimate a run-time percentile (ms) from the power-of-two histogram.

    Bucket i holds runs in [2^(i-1), 2^i) ms, bucket 0 those under 1 ms; the
    estimate interpolates linearly inside the bucket the percentile falls in,
    so it is within a factor of two of the truth, usually much closer.
    """
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i in sorted(buckets):
        n = buckets[i]
        if n and seen + n >= rank:
            low = 0.0 if i == 0 else 2.0 ** (i - 1)
            high = 2.0**i
            return low + (high - low) * (rank - seen) / n
        seen += n
    return 2.0 ** max(buckets)


def job_metrics(
    minutes: int = 60, queue: str | None = None, client: redis.Redis | None = None
) -> list[JobMetrics]:
    """Per job name over the last `minutes` (at most 48 h are kept), busiest first."""
    client = client_or_default(client)
    keys = get_keys()
    names = [queue] if queue else queue_names(client)
    now = time.time() // 60 * 60
    stamps = [now - 60 * i for i in range(minutes - 1, -1, -1)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        for stamp in stamps:
            pipe.hgetall(keys.queue(name).metrics(utc_minute(stamp)))
    raw = pipe.execute()
    by_name: dict[str, JobMetrics] = {}
    per_minute: dict[str, dict[float, list[int]]] = {}
    for i, fields in enumerate(raw):
        stamp = stamps[i % len(stamps)]
        for key, value in fields.items():
            job_name, _, kind = key.decode().rpartition("|")
            m = by_name.setdefault(job_name, JobMetrics(job_name))
            n = int(float(value))
            minute = per_minute.setdefault(job_name, {}).setdefault(stamp, [0, 0])
            if kind == "count":
                m.count += n
                minute[0] += n
            elif kind == "failed":
                m.failed += n
                minute[1] += n
            elif kind == "ms":
                m.total_ms += float(value)
            elif kind.startswith("b") and kind[1:].isdigit():
                m.buckets[int(kind[1:])] = m.buckets.get(int(kind[1:]), 0) + n
    for job_name, m in by_name.items():
        series = per_minute.get(job_name, {})
        m.series = [(s, *series.get(s, [0, 0])) for s in stamps]  # type: ignore[misc]
    return sorted(by_name.values(), key=lambda m: -m.count)
