"""Promotion of due scheduled and retrying jobs into their queues.

Every worker process runs this for its own queues; the promote script is
atomic, so each due job is moved exactly once however many workers call it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis.asyncio

from steep.connection import SCRIPTS
from steep.keys import WAKE_TOKEN, QueueKeys

BATCH = 1000


async def promote_due(client: redis.asyncio.Redis, queues: Sequence[QueueKeys]) -> float | None:
    """Move every due job of these queues; return the next due time (epoch s) or None."""
    next_due: float | None = None
    for qk in queues:
        while True:
            moved, nxt = await SCRIPTS.promote.run_async(
                client,
                [qk.scheduled, qk.queued, qk.state, qk.prioritized, qk.jobs],
                [int(time.time() * 1000), BATCH, WAKE_TOKEN],
            )
            if moved < BATCH:
                break
        if nxt >= 0 and (next_due is None or nxt / 1000 < next_due):
            next_due = nxt / 1000
    return next_due
