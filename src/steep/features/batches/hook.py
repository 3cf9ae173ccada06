"""The worker side of batches: record each member's final outcome, move chains on.

Registered as a feature hook (steep.hooks). Its `after_run` is called before the
member's own settlement is written, so a worker that dies in between leaves the job
in flight; the job runs again and is recorded again, which counts nothing twice
(members are a hash of id -> outcome, see scripts/batch_record.lua). A failed attempt
that will be retried records nothing: only success, death, or a discard (the job
expired) finish a member.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from steep import hooks
from steep.connection import get_client, get_keys
from steep.features.batches.delivery import deliver, next_step, push
from steep.features.batches.records import add_members, record, unfinished
from steep.job import Envelope, encode

if TYPE_CHECKING:
    import redis.asyncio

    from steep.context import JobContext
    from steep.hooks import Outcome
    from steep.registry import JobFunction

log = logging.getLogger("steep.batch")


class BatchHook(hooks.Hook):
    """Concerns batch members (meta `batch`) and batch callbacks (meta `batch_cb`)."""

    name = "batch"

    def concerns(self, envelope: Envelope, function: JobFunction[Any, Any] | None) -> bool:
        meta = envelope.meta
        return bool(meta) and ("batch" in meta or "batch_cb" in meta)

    async def before_run(
        self, redis: redis.asyncio.Redis, envelope: Envelope, ctx: JobContext
    ) -> hooks.Verdict | None:
        callback = envelope.meta.get("batch_cb")
        if callback:
            # a callback enqueued again after it ran (its sender died before clearing
            # the outbox, and the callback had already run and settled) runs once only
            batch_id, kind = callback
            done = await redis.hget(get_keys().batch(batch_id).info, f"cb:{kind}")
            if done == b"done":
                return hooks.Discard(
                    "AlreadyRan", f"the {kind} callback of batch {batch_id} already ran"
                )
        return None

    async def after_run(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        if isinstance(outcome.verdict, hooks.Defer) or outcome.will_retry:
            return
        await asyncio.to_thread(settle_member, outcome)

    async def after_settle(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        # a discard decided by a hook registered before this one never reaches our
        # after_run; recording it again when it did is harmless
        if isinstance(outcome.verdict, hooks.Discard):
            await asyncio.to_thread(settle_member, outcome)


def settle_member(outcome: Outcome) -> None:
    """Record a member's final outcome (and start a chain's next step) in its batch."""
    env = outcome.envelope
    assert env is not None
    meta = env.meta
    client = get_client()
    callback = meta.get("batch_cb")
    if callback:
        if outcome.ok:
            client.hset(get_keys().batch(callback[0]).info, f"cb:{callback[1]}", "done")
        return
    batch_id = meta.get("batch")
    if not batch_id:
        return
    items: list[tuple[str, str, int | None, bytes | str | None]]
    if outcome.ok and outcome.verdict is None:
        position = meta.get("batch_i")
        value: bytes | None = None
        if position is not None:
            try:
                value = encode(outcome.value)
            except (TypeError, msgspec.EncodeError, OverflowError):
                log.error("job %s: its return value cannot be kept for batch %s", env.id, batch_id)
                value = b"null"
        items = [(env.id, "s", position, value)]
        rest = meta.get("chain")
        if rest and not _next_step(client, env, batch_id, outcome.value, rest):
            items = [(env.id, "f", None, None)]
    else:
        items = [(env.id, "f", None, None)]
    outbox = record(client, batch_id, items)
    if outbox:
        deliver(client, batch_id, outbox)


def _next_step(client: Any, env: Envelope, batch_id: str, value: Any, rest: list[Any]) -> bool:
    """Add and enqueue the chain's next step (its id is fixed by this step's id, so a
    step that runs again does not start the next one twice). False if impossible."""
    nxt = next_step(env, batch_id, value, rest)
    if nxt is None:
        return False
    if not add_members(client, batch_id, [nxt.id]):
        # this step ran before and added the next one: enqueue it again only if it has
        # not finished (enqueue.lua ignores it while it is still waiting or running)
        push(client, unfinished(client, batch_id, [nxt]))
        return True
    push(client, [nxt])
    return True


hooks.register(BatchHook())
