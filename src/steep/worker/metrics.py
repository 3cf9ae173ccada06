"""Per-minute run-time metrics per job name, aggregated in memory and flushed.

A worker process records every finished job here (a dict update, no I/O)
and flushes about once a second: per queue and UTC minute, one HASH
`<ns>:{<queue>}:metrics:<YYYYmmddHHMM>` with fields `<name>|count`,
`<name>|failed`, `<name>|ms` (sum of run time) and a log-2 histogram
`<name>|b<i>` (b0: under 1 ms; b<i>: [2^(i-1), 2^i) ms), kept 48 hours.
Percentiles are read from the histogram, so memory stays bounded however
many jobs run.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import redis.asyncio

from steep.keys import Keys

RETENTION_SECONDS = 48 * 3600


def minute_of(ts: float) -> str:
    return time.strftime("%Y%m%d%H%M", time.gmtime(ts))


def bucket_of(ms: float) -> int:
    return 0 if ms < 1 else int(math.log2(ms)) + 1


def bucket_upper_ms(index: int) -> float:
    """The upper edge of histogram bucket `index`, in ms."""
    return 1.0 if index == 0 else float(2**index)


class MetricsRecorder:
    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        # (queue, minute) -> field -> increment
        self._pending: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._minute = ""
        self._minute_ends = 0.0

    def record(self, queue: str, name: str, seconds: float, failed: bool) -> None:
        ms = seconds * 1000
        now = time.time()
        if now >= self._minute_ends:  # formatting the minute once a minute, not per job
            self._minute = minute_of(now)
            self._minute_ends = (now // 60 + 1) * 60
        fields = self._pending[(queue, self._minute)]
        fields[f"{name}|count"] += 1
        fields[f"{name}|ms"] += round(ms)
        fields[f"{name}|b{bucket_of(ms)}"] += 1
        if failed:
            fields[f"{name}|failed"] += 1

    async def flush(self, client: redis.asyncio.Redis) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        pipe = client.pipeline(transaction=False)
        for (queue, minute), fields in pending.items():
            key = self.keys.queue(queue).metrics(minute)
            for field, amount in fields.items():
                pipe.hincrby(key, field, amount)
            pipe.expire(key, RETENTION_SECONDS)
        try:
            await pipe.execute()
        except Exception:
            # metrics are best effort: merge back and try with the next flush
            for slot, fields in pending.items():
                for field, amount in fields.items():
                    self._pending[slot][field] += amount
            raise
