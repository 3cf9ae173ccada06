"""The periodic duties of one worker process, each a task on its event loop.

The schedule loop promotes due scheduled and retrying jobs onto their queues and runs
the features' tickers (cron's ticks), sleeping until the next is due (at most the poll
interval, with jitter). The metrics loop flushes the per-minute job metrics every second.
Both end once the process is stopping.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from steep.connection import RETRYABLE
from steep.worker.scheduler import promote_due

if TYPE_CHECKING:
    from steep.worker.process import WorkerProcess

log = logging.getLogger("steep.worker")


async def schedule_loop(worker: WorkerProcess) -> None:
    interval = worker.settings.schedule_poll_interval
    # a flag, not only cancel(): redis-py may turn a cancellation mid-command into
    # a connection error, which this loop would otherwise survive
    while not worker._stop.is_set():
        try:
            next_due = await promote_due(worker.redis, list(worker.qkeys.values()))
            for ticker in worker.tickers:
                tick = await ticker.tick(worker.redis)
                if tick is not None:
                    next_due = tick if next_due is None else min(next_due, tick)
        except RETRYABLE as exc:
            log.warning("cannot promote scheduled jobs (%s)", exc)
            next_due = None
        delay = interval if next_due is None else min(interval, next_due - time.time())
        # a little jitter keeps many workers from calling in lockstep
        await asyncio.sleep(max(0.005, delay) * random.uniform(0.9, 1.0))


async def metrics_loop(worker: WorkerProcess) -> None:
    while not worker._stop.is_set():
        await asyncio.sleep(1.0)
        if worker.slots is not None:
            worker.slots.record_metrics()
        try:
            await worker.metrics.flush(worker.redis)
        except RETRYABLE as exc:
            log.debug("metrics not flushed yet: %s", exc)
