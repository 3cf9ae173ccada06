"""Jobs for the cron tests. Plain jobs only: entries naming them come from settings, so
importing this module in the test process adds no schedule to other tests' workers."""

from __future__ import annotations

import json

from steep import current_job, job
from steep.connection import get_client


@job(queue="default")
def record_tick(tag: str, extra: int = 0) -> None:
    """Appends one JSON line per run to test:cron:<tag>: job id, tick, trigger, extra."""
    ctx = current_job()
    assert ctx is not None
    line = {"id": ctx.id, "tick": ctx.meta.get("tick"), "trigger": ctx.meta.get("trigger")}
    get_client().rpush(f"test:cron:{tag}", json.dumps({**line, "extra": extra}))


def runs(tag: str) -> list[dict]:
    return [json.loads(x) for x in get_client().lrange(f"test:cron:{tag}", 0, -1)]
