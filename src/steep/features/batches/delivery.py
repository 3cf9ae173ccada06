"""Getting batch jobs into their queues: members, and what a batch's outbox decided.

`member_envelope` and `push` make and enqueue members (ids fixed in advance, so an
enqueue made again adds nothing); `deliver` carries out a batch's outbox (enqueue its
`complete`/`success` callbacks, count the batch as done in its parent) and clears it.
Used by Batch (steep.features.batches.batch) and by the worker's batch hook.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict
from typing import Any

import redis

from steep import middleware
from steep.connection import SCRIPTS, get_keys
from steep.features.batches.ids import derived_id
from steep.features.batches.records import get_results, get_status, record
from steep.features.batches.workflow import Signature
from steep.job import Envelope, encode_envelope

log = logging.getLogger("steep.batch")


def member_envelope(sig: Signature, job_id: str, meta: dict[str, Any]) -> Envelope:
    from steep import client as steep_client

    envelope = steep_client._envelope(sig.name, sig.job_options(), sig.args, sig.kwargs)
    envelope.id = job_id
    envelope.meta = meta
    return envelope


def next_step(env: Envelope, batch_id: str, value: Any, rest: list[Any]) -> Envelope | None:
    """The envelope of a chain's next step after `env` returned `value` (its id fixed by this
    step's, so a step that runs again makes the same one); None, logged, if it cannot be made."""
    step = Signature.from_dict(rest[0])
    meta: dict[str, Any] = {"batch": batch_id}
    if len(rest) > 1:
        meta["chain"] = rest[1:]
    if "batch_i" in env.meta:
        meta["batch_i"] = env.meta["batch_i"] + 1
    try:
        nxt = member_envelope(step.with_first(value), derived_id(env.id, "next"), meta)
        encode_envelope(nxt)
    except (TypeError, ValueError) as exc:
        log.error("chain %s stopped after job %s: %s", batch_id, env.id, exc)
        return None
    return nxt


def push(client: redis.Redis, envelopes: list[Envelope]) -> None:
    """Enqueue envelopes (ids fixed in advance: enqueue.lua never adds an id twice)."""
    from steep import client as steep_client

    if not envelopes:
        return
    chain = middleware.chains()[0]
    with middleware.around_enqueue(chain, envelopes) if chain else contextlib.nullcontext():
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for envelope in envelopes:
            by_queue[envelope.queue] += (envelope.id, encode_envelope(envelope), 0)
        for queue, argv in by_queue.items():
            queues_key = steep_client._note_queue(queue)
            if queues_key is not None:
                client.sadd(queues_key, queue)
            SCRIPTS.enqueue(client, steep_client._queue_keys(queue), argv)


def deliver(client: redis.Redis, batch_id: str, outbox: str) -> None:
    """Do what batch_record decided: enqueue callbacks, tell the parent batch; then
    clear the outbox. Safe to repeat: callback ids are fixed by batch id and kind."""
    entries = json.loads(outbox)
    info = get_keys().batch(batch_id).info
    for entry in entries:
        if "cb" in entry:
            _fire(client, batch_id, entry["cb"])
        elif "parent" in entry:
            upstream = record(client, entry["parent"], [(batch_id, entry["outcome"], None, None)])
            if upstream:
                deliver(client, entry["parent"], upstream)
    SCRIPTS.named("batch_sent")(client, [info], [outbox])


def _fire(client: redis.Redis, batch_id: str, kind: str) -> None:
    bk = get_keys().batch(batch_id)
    raw = client.hmget(bk.info, f"on_{kind}", "callback_args")
    if raw[0] is None:
        return
    sig = Signature.from_dict(json.loads(raw[0]))
    if kind == "success" and raw[1] == b"results":
        first: Any = get_results(batch_id, client)
    else:
        status = get_status(batch_id, client)
        first = status.as_dict() if status else {"id": batch_id}
    envelope = member_envelope(
        sig.with_first(first), derived_id(batch_id, kind), {"batch_cb": [batch_id, kind]}
    )
    push(client, [envelope])
    log.info(
        "batch %s: %s callback %s enqueued as %s",
        batch_id,
        kind,
        sig.name,
        envelope.id,
        extra={"batch": batch_id, "event": f"batch_{kind}", "job_id": envelope.id},
    )
