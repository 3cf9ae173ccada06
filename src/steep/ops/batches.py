"""Batches for operators: the recent ones with their progress, and one in detail.

The index of recent batches is a capped ZSET (`<ns>:batches`, the newest 10,000);
each batch's own record expires a while after it completes (7 days by default), so
an index entry can outlive its batch: such entries are skipped and pruned here.
"""

from __future__ import annotations

from typing import cast

import redis

from steep.connection import get_keys
from steep.features.batches.records import BatchStatus, get_results, get_status
from steep.ops._util import client_or_default

__all__ = ["BatchStatus", "batch_results", "batches", "get_batch"]


def batches(
    limit: int = 50, state: str | None = None, client: redis.Redis | None = None
) -> list[BatchStatus]:
    """The most recent batches first; `state` keeps only open, running, succeeded or failed."""
    client = client_or_default(client)
    index = get_keys().batches
    out: list[BatchStatus] = []
    gone: list[str] = []
    start, page = 0, max(limit, 50)
    while len(out) < limit:
        raw = cast("list[bytes]", client.zrevrange(index, start, start + page - 1))
        ids = [i.decode() for i in raw]
        if not ids:
            break
        for batch_id in ids:
            status = get_status(batch_id, client)
            if status is None:
                gone.append(batch_id)
            elif state is None or status.state == state:
                out.append(status)
                if len(out) == limit:
                    break
        start += page
    if gone:
        client.zrem(index, *gone)
    return out


def get_batch(batch_id: str, client: redis.Redis | None = None) -> BatchStatus | None:
    """One batch's progress, callbacks and dead members, or None (unknown or expired)."""
    return get_status(batch_id, client_or_default(client))


def batch_results(batch_id: str, client: redis.Redis | None = None) -> list[object]:
    """A group's (or chain's) kept return values, in order."""
    return get_results(batch_id, client_or_default(client))
