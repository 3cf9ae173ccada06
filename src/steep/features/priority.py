"""Priority within a queue: a job enqueued with `priority=N` (N > 0) is taken before
every waiting job of a lower priority, one with N < 0 after the ordinary ones.

Ordinary jobs (priority 0) keep their list, `queued`, and their path: the same enqueue
script, the same claim. Jobs with a priority wait in one ZSET per queue,
`prioritized` (score: -priority, so the highest comes first; ties in id order, and
steep's ids sort by creation time, so each priority is first in, first out). The claim
script takes from it before `queued` (N > 0) and after it (N < 0), at the cost of one
EXISTS for queues that never saw a priority.

An idle worker blocks on `queued` alone, so a job added to `prioritized` while
`queued` is empty also pushes WAKE_TOKEN onto `queued`: the blocked worker takes it,
its claim drops it (it has no envelope) and takes the job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.asyncio

from steep import options
from steep.connection import SCRIPTS, get_keys
from steep.job import Envelope, Job
from steep.keys import WAKE_TOKEN, QueueKeys

if TYPE_CHECKING:
    from steep.options import JobOptions

__all__ = ["HIGHEST", "LOWEST", "WAKE_TOKEN", "apush", "check_priority", "push", "queued_page"]

LOWEST, HIGHEST = -100, 100

# Jobs per script call in enqueue_many.
_CHUNK = 5000


def check_priority(priority: int) -> None:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"priority must be an int, got {priority!r}")
    if not LOWEST <= priority <= HIGHEST:
        raise ValueError(f"priority must be between {LOWEST} and {HIGHEST}, got {priority}")


def _call(
    queue: str, envelopes: Sequence[Envelope], payloads: Sequence[bytes], at: float | None
) -> tuple[list[str], list[Any]]:
    qk = get_keys().queue(queue)
    keys = [qk.queued, qk.jobs, qk.state, qk.scheduled, qk.prioritized]
    run_at = 0 if at is None or at <= time.time() else int(at * 1000)
    argv: list[Any] = [WAKE_TOKEN]
    for envelope, payload in zip(envelopes, payloads, strict=True):
        argv += (envelope.id, payload, run_at, envelope.priority)
    return keys, argv


def push(
    client: redis.Redis,
    queue: str,
    envelopes: Sequence[Envelope],
    payloads: Sequence[bytes],
    at: float | None = None,
) -> None:
    for start in range(0, len(envelopes), _CHUNK):
        end = start + _CHUNK
        keys, argv = _call(queue, envelopes[start:end], payloads[start:end], at)
        SCRIPTS.named("enqueue_prioritized")(client, keys, argv)


async def apush(
    client: redis.asyncio.Redis,
    queue: str,
    envelopes: Sequence[Envelope],
    payloads: Sequence[bytes],
    at: float | None = None,
) -> None:
    for start in range(0, len(envelopes), _CHUNK):
        end = start + _CHUNK
        keys, argv = _call(queue, envelopes[start:end], payloads[start:end], at)
        await SCRIPTS.named("enqueue_prioritized").run_async(client, keys, argv)


class PriorityOption(options.Feature):
    """`priority=N`: the job waits in the queue's sorted set, taken before lower ones."""

    name = "priority"
    options = {"priority": 0}
    push_rank = 1

    def check(self, values: dict[str, Any]) -> bool:
        if values["priority"]:
            check_priority(values["priority"])
        return bool(values["priority"])

    def stamp(self, envelope: Envelope, opts: JobOptions, at: float | None) -> None:
        envelope.priority = opts.get("priority")

    def push(
        self,
        client: redis.Redis,
        envelopes: Sequence[Envelope],
        payloads: Sequence[bytes],
        opts: JobOptions,
        at: float | None,
    ) -> list[Job] | None:
        push(client, opts.queue, envelopes, payloads, at)
        return None

    async def apush(
        self,
        client: redis.asyncio.Redis,
        envelopes: Sequence[Envelope],
        payloads: Sequence[bytes],
        opts: JobOptions,
        at: float | None,
    ) -> list[Job] | None:
        await apush(client, opts.queue, envelopes, payloads, at)
        return None


options.register(PriorityOption())


# -- reading, for the operations layer ---------------------------------------------------


def queued_page(client: redis.Redis, qk: QueueKeys, offset: int, size: int) -> list[str]:
    """Ids of waiting jobs in the order they will run, from `offset`: priorities above 0,
    then `queued` from its consumer end, then priorities below 0."""
    pipe = client.pipeline(transaction=False)
    pipe.zcount(qk.prioritized, "-inf", "(0")
    pipe.llen(qk.queued)
    high, plain = pipe.execute()
    ids: list[str] = []
    end = offset + size
    if offset < high:
        raw = cast("list[bytes]", client.zrange(qk.prioritized, offset, min(end, high) - 1))
        ids += [r.decode() for r in raw]
    start, stop = max(offset, high) - high, min(end, high + plain) - high
    if start < stop:
        raw = cast("list[bytes]", client.lrange(qk.queued, -stop, -(start + 1)))
        ids += [r.decode() for r in reversed(raw)]
    start, stop = max(offset, high + plain) - plain, end - plain
    if start < stop:
        raw = cast("list[bytes]", client.zrange(qk.prioritized, start, stop - 1))
        ids += [r.decode() for r in raw]
    return ids
