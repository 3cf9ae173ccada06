"""Operator actions that change jobs: edit, move, delete, run now, retry, and the
signals to running jobs (cancel, interrupt) and back (resume).

Every change is one Lua script on one queue's keys (scripts/edit.lua,
delete.lua, take.lua, run_now.lua, retry_dead.lua), so a worker claims either
the job as it was or as it is after the change, never something in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, cast

import redis

from steep.connection import SCRIPTS, get_keys
from steep.features import priority, unique
from steep.job import decode
from steep.ops._util import OpsError, chunks, client_or_default, text
from steep.ops.jobs.info import _NAMES, STATE_WORDS, JobInfo, get_job
from steep.ops.queues import clear

_REFUSALS = {
    "missing": "job {id} is not waiting in queue {queue} (finished, deleted, or never there)",
    "changed": "job {id} was changed by someone else meanwhile; reload and try again",
    "running": "job {id} is running; only a waiting (queued, scheduled, retrying) job changes",
    "dead": "job {id} is dead; retry it first",
    "claiming": "job {id} is being handed to a worker right now",
}


def _refuse(reason: bytes | str, queue: str, job_id: str) -> OpsError:
    return OpsError(_REFUSALS.get(text(reason), text(reason)).format(id=job_id, queue=queue))


def edit_job(
    queue: str,
    job_id: str,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    run_at: float | None = None,
    to_queue: str | None = None,
    client: redis.Redis | None = None,
) -> JobInfo:
    """Change a waiting job in place: its arguments, when it runs (epoch seconds; 0 = now),
    and/or its queue. Refused (OpsError) once a worker holds it."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    raw = cast("bytes | None", client.hget(qk.jobs, job_id))
    if raw is None:
        raise _refuse("missing", queue, job_id)
    data = decode(raw)
    if args is not None:
        if not isinstance(args, list):
            raise OpsError("args must be a JSON array")
        data["args"] = args
    if kwargs is not None:
        if not isinstance(kwargs, dict):
            raise OpsError("kwargs must be a JSON object")
        data["kwargs"] = kwargs
    new = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    when = "" if run_at is None else str(0 if run_at <= time.time() else int(run_at * 1000))
    if to_queue and to_queue != queue:
        _move(client, queue, job_id, raw, data, to_queue, when)
        queue = to_queue
    else:
        outcome = SCRIPTS.edit(
            client,
            [qk.jobs, qk.state, qk.queued, qk.scheduled, qk.prioritized],
            [job_id, raw, new, when],
        )
        if text(outcome) != "ok":
            raise _refuse(outcome, queue, job_id)
    info = get_job(queue, job_id, client)
    if info is None:  # a worker finished it in the meantime
        raise _refuse("missing", queue, job_id)
    return info


def move_job(queue: str, job_id: str, to_queue: str, client: redis.Redis | None = None) -> JobInfo:
    """Move a waiting job to another queue (it keeps its id, arguments and due time)."""
    return edit_job(queue, job_id, to_queue=to_queue, client=client)


def _move(
    client: redis.Redis,
    queue: str,
    job_id: str,
    raw: bytes,
    data: dict[str, Any],
    to_queue: str,
    when: str,
) -> None:
    keys = get_keys()
    src, dst = keys.queue(queue), keys.queue(to_queue)
    if when == "":
        due = client.zscore(src.scheduled, job_id)
        when = str(int(due)) if due is not None else "0"
    data["queue"] = to_queue
    new = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Two queues are two cluster slots, so no one script can do both halves. The
    # copy goes in first: a crash in between leaves a duplicate, never a loss.
    if data.get("priority"):
        added = SCRIPTS.named("enqueue_prioritized")(
            client,
            [dst.queued, dst.jobs, dst.state, dst.scheduled, dst.prioritized],
            [priority.WAKE_TOKEN, job_id, new, when, int(data["priority"])],
        )
    else:
        added = SCRIPTS.enqueue(
            client, [dst.queued, dst.jobs, dst.state, dst.scheduled], [job_id, new, when]
        )
    if not added:
        raise OpsError(f"queue {to_queue} already holds a job {job_id}")
    client.sadd(keys.queues, to_queue)
    outcome = SCRIPTS.take(
        client,
        [src.jobs, src.state, src.queued, src.scheduled, src.errors, src.prioritized],
        [job_id, raw],
    )
    if text(outcome) != "ok":
        SCRIPTS.delete(client, _queue_keys(to_queue), ["", job_id])
        raise _refuse(outcome, queue, job_id)


def _queue_keys(queue: str) -> list[str]:
    qk = get_keys().queue(queue)
    return [qk.jobs, qk.state, qk.queued, qk.scheduled, qk.dead, qk.errors, qk.prioritized]


def delete_jobs(
    queue: str, ids: Iterable[str], *, only: str = "", client: redis.Redis | None = None
) -> int:
    """Delete waiting, scheduled, retrying or dead jobs (never running ones).

    only: restrict to one state ("queued", "scheduled", "retrying", "dead").
    Returns how many were deleted.
    """
    client = client_or_default(client)
    word = STATE_WORDS.get(only, only)
    total = 0
    jobs_key = get_keys().queue(queue).jobs
    for chunk in chunks(ids):
        envelopes = cast("list[bytes | None]", client.hmget(jobs_key, chunk))
        total += int(SCRIPTS.delete(client, _queue_keys(queue), [word, *chunk]))
        unique.release_deleted(client, queue, chunk, envelopes)
    return total


def run_now(queue: str, ids: Iterable[str], client: redis.Redis | None = None) -> int:
    """Queue scheduled or retrying jobs at once, at the front of the line."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    total = 0
    for chunk in chunks(ids):
        total += int(SCRIPTS.run_now(client, [qk.scheduled, qk.queued, qk.state], chunk))
    return total


def retry_jobs(queue: str, ids: Iterable[str], client: redis.Redis | None = None) -> int:
    """Run dead and retrying jobs again now. Returns how many were queued."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    total = 0
    for chunk in chunks(ids):
        total += int(SCRIPTS.retry_dead(client, [qk.dead, qk.queued, qk.state, qk.errors], chunk))
        total += int(SCRIPTS.run_now(client, [qk.scheduled, qk.queued, qk.state], chunk))
    return total


def retry_all(queue: str, state: str = "dead", client: redis.Redis | None = None) -> int:
    """Retry every dead (or every retrying) job of a queue, in batches."""
    return _all(queue, state, client, retry=True)


def delete_all(queue: str, state: str = "dead", client: redis.Redis | None = None) -> int:
    """Delete every job of a queue in `state` (dead, retrying, scheduled or queued)."""
    if state == "queued":
        return clear(queue, client)
    return _all(queue, state, client, retry=False)


def _all(queue: str, state: str, client: redis.Redis | None, *, retry: bool) -> int:
    if state not in ("dead", "retrying", "scheduled"):
        raise OpsError(f"cannot act on all {state} jobs (dead, retrying or scheduled)")
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    key = qk.dead if state == "dead" else qk.scheduled
    total, offset = 0, 0
    while True:
        ids = [r.decode() for r in cast("list[bytes]", client.zrange(key, offset, offset + 499))]
        if not ids:
            return total
        seen = len(ids)
        if state != "dead":
            # the scheduled set holds both scheduled and retrying jobs
            states = client.hmget(qk.state, ids)
            ids = [i for i, s in zip(ids, states, strict=True) if _NAMES.get(text(s)) == state]
        if retry:
            done = retry_jobs(queue, ids, client)
        else:
            done = delete_jobs(queue, ids, only=state, client=client)
        if done == 0 and seen == len(ids):
            return total  # nothing at the front can be moved (it changed meanwhile)
        # what was moved left the set; skip over what stays
        offset += seen - done
        total += done


def cancel_job(queue: str, job_id: str, client: redis.Redis | None = None) -> str:
    """Ask the worker running a job to cancel it; it then goes to the dead set
    (error type `steep.Cancelled`). Returns the worker's id."""
    client = client_or_default(client)
    keys = get_keys()
    state = text(client.hget(keys.queue(queue).state, job_id))
    if not state.startswith("running"):
        raise OpsError(f"job {job_id} is not running (delete a waiting job instead)")
    worker_id = state.split(" ")[1]
    client.rpush(keys.worker_signals(worker_id), f"cancel {queue} {job_id}")
    return worker_id


def interrupt_job(queue: str, job_id: str, client: redis.Redis | None = None) -> str:
    """Ask the worker running an iterable job to stop it at its next step boundary and
    park it (state `interrupted`) until `resume_job`. Returns the worker's id."""
    client = client_or_default(client)
    keys = get_keys()
    qk = keys.queue(queue)
    state = text(client.hget(qk.state, job_id))
    if not state.startswith("running"):
        raise OpsError(f"job {job_id} is not running; only a running iterable job is interrupted")
    if not client.exists(qk.cursor(job_id)):
        raise OpsError(
            f"job {job_id} is not an iterable job (it has no saved cursor); cancel it instead"
        )
    worker_id = state.split(" ")[1]
    client.rpush(keys.worker_signals(worker_id), f"interrupt {queue} {job_id}")
    return worker_id


def resume_job(queue: str, job_id: str, client: redis.Redis | None = None) -> None:
    """Queue an interrupted job again, at the front; it continues from its saved cursor."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    if text(client.hget(qk.state, job_id)) != "interrupted":
        raise OpsError(f"job {job_id} is not interrupted (nothing to resume)")
    if not SCRIPTS.run_now(client, [qk.scheduled, qk.queued, qk.state], [job_id]):
        raise OpsError(f"job {job_id} was resumed or deleted meanwhile")
