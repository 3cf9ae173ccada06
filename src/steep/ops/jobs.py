"""Jobs in any state: list with cursors and filters, show, edit, move, delete,
run now, retry, cancel, interrupt and resume (iterable jobs).

Every change is one Lua script on one queue's keys (scripts/edit.lua,
delete.lua, take.lua, run_now.lua, retry_dead.lua), so a worker claims either
the job as it was or as it is after the change, never something in between.
Listing reads one page of ids with one command and the page's records with
one pipeline: the cost of a page never depends on the size of the queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from steep.connection import SCRIPTS, get_keys
from steep.features import priority, progress, unique
from steep.job import decode
from steep.keys import QueueKeys
from steep.ops._util import client_or_default, text

STATES = ("queued", "scheduled", "retrying", "running", "interrupted", "dead", "succeeded")
# the state words stored in the `state` hash, by the state names shown to operators
_WORDS = {
    "scheduled": "scheduled",
    "retrying": "failed",
    "dead": "dead",
    "interrupted": "interrupted",
}
_NAMES = {v: k for k, v in _WORDS.items()}


class OpsError(Exception):
    """An operator action that cannot be done; the message says why."""


@dataclass(slots=True)
class JobInfo:
    """One job as an operator sees it. Fields that do not apply are None."""

    id: str
    queue: str
    state: str  # one of STATES
    name: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    retries: int = 0
    timeout: float | None = None
    result_ttl: int | None = None
    enqueued_at: float | None = None
    due_at: float | None = None  # scheduled or retrying: when it runs
    died_at: float | None = None
    finished_at: float | None = None  # succeeded: when
    duration: float | None = None  # succeeded: run time in seconds
    worker: str | None = None  # running: the worker process holding it; succeeded: ran it
    started_at: float | None = None
    error: dict[str, Any] | None = None  # the last error: type, message, traceback, attempt
    result: dict[str, Any] | None = None  # succeeded (or dead with result_ttl): the outcome
    tags: list[str] = field(default_factory=list)
    # running: the job's last report {"fraction", "message", "at"} (steep.features.progress)
    progress: dict[str, Any] | None = None
    # iterable jobs: the saved cursor record {"cursor", "steps", "at", "done"}
    cursor: dict[str, Any] | None = None
    unique_key: str | None = None  # unique jobs: the lock's key (docs/unique.md)
    unique_until: str | None = None  # "finished" or "started"
    expires_at: float | None = None  # expiring jobs: discarded if not started by then
    priority: int = 0  # higher runs first within the queue
    extra: dict[str, Any] = field(default_factory=dict)  # producer-defined envelope fields
    envelope: str = ""  # the stored JSON, verbatim

    @property
    def args_json(self) -> str:
        """The arguments as pretty-printed JSON (what the dashboard shows and edits)."""
        return json.dumps({"args": self.args, "kwargs": self.kwargs}, indent=2, ensure_ascii=False)


@dataclass(slots=True)
class Page:
    jobs: list[JobInfo]
    cursor: str | None  # pass it back for the next page; None: this was the last page


@dataclass(frozen=True, slots=True)
class Filter:
    """Case-insensitive substring filters; all given ones must match."""

    name: str | None = None  # in the job's name
    text: str | None = None  # in its arguments (as JSON)
    tag: str | None = None  # one of the envelope's `tags` equals it
    error: str | None = None  # in its last error's type or message

    def __bool__(self) -> bool:
        return any((self.name, self.text, self.tag, self.error))

    def matches(self, job: JobInfo) -> bool:
        if self.name and self.name.lower() not in job.name.lower():
            return False
        if self.text:
            blob = json.dumps([job.args, job.kwargs], ensure_ascii=False).lower()
            if self.text.lower() not in blob:
                return False
        if self.tag and self.tag not in job.tags:
            return False
        if self.error:
            err = job.error or (job.result or {}).get("error") or {}
            blob = f"{err.get('type', '')} {err.get('message', '')}".lower()
            if self.error.lower() not in blob:
                return False
        return True


def created_at(job_id: str) -> float | None:
    """When steep made the id (its first 14 hex digits are microseconds), if it did."""
    try:
        return int(job_id[:14], 16) / 1_000_000 if len(job_id) == 26 else None
    except ValueError:
        return None


# -- reading ---------------------------------------------------------------------------


def get_job(queue: str, job_id: str, client: redis.Redis | None = None) -> JobInfo | None:
    """One job with everything steep knows about it, or None when it holds no record."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    pipe = client.pipeline(transaction=False)
    pipe.hget(qk.jobs, job_id)
    pipe.hget(qk.state, job_id)
    pipe.hget(qk.errors, job_id)
    pipe.zscore(qk.scheduled, job_id)
    pipe.zscore(qk.dead, job_id)
    pipe.lindex(qk.result(job_id), 0)
    pipe.get(qk.progress(job_id))
    pipe.get(qk.cursor(job_id))
    envelope, state, error, due, died, result, report, cursor = pipe.execute()
    if envelope is None:
        if result is None:
            return None
        return _succeeded(queue, job_id, result)
    info = _build(queue, job_id, envelope, state, error)
    if info.state == "running":
        info.progress = progress.parse(report)
    info.cursor = progress.parse(cursor)
    info.due_at = due / 1000 if due is not None else None
    info.died_at = died / 1000 if died is not None else None
    if result is not None:
        info.result = decode(result)
    return info


def _succeeded(queue: str, job_id: str, result: bytes) -> JobInfo:
    outcome = decode(result)
    # an envelope is gone once a job settles; a dead one with result_ttl leaves only its error
    return JobInfo(
        id=job_id,
        queue=queue,
        state="dead" if "error" in outcome else "succeeded",
        name=outcome.get("name", ""),
        attempt=outcome.get("attempt", 0),
        enqueued_at=created_at(job_id),
        finished_at=outcome.get("finished_at"),
        duration=outcome.get("duration"),
        worker=outcome.get("worker"),
        result=outcome,
        error=outcome.get("error"),
    )


def _build(
    queue: str, job_id: str, envelope: bytes, state: bytes | None, error: bytes | None
) -> JobInfo:
    data = decode(envelope)
    word = text(state)
    info = JobInfo(
        id=job_id,
        queue=queue,
        state="queued",
        name=data.pop("name", ""),
        args=data.pop("args", []),
        kwargs=data.pop("kwargs", {}),
        attempt=data.pop("attempt", 0),
        retries=data.pop("retries", 0),
        timeout=data.pop("timeout", None),
        result_ttl=data.pop("result_ttl", None),
        enqueued_at=data.pop("enqueued_at", None),
        tags=[str(t) for t in data.pop("tags", []) or []],
        unique_key=data.pop("unique_key", None),
        unique_until=data.pop("unique_until", None),
        expires_at=data.pop("expires_at", None),
        priority=data.pop("priority", 0),
        envelope=envelope.decode(),
    )
    for known in ("id", "queue", "v"):
        data.pop(known, None)
    info.extra = data
    if word.startswith("running"):
        parts = word.split(" ")
        info.state = "running"
        if len(parts) == 3:
            info.worker, info.started_at = parts[1], int(parts[2]) / 1000
    elif word:
        info.state = _NAMES.get(word, word)
    if error:
        info.error = decode(error)
    return info


def _hydrate(
    client: redis.Redis, queue: str, ids: list[str], scores: dict[str, float] | None = None
) -> list[JobInfo]:
    if not ids:
        return []
    qk = get_keys().queue(queue)
    pipe = client.pipeline(transaction=False)
    pipe.hmget(qk.jobs, ids)
    pipe.hmget(qk.state, ids)
    pipe.hmget(qk.errors, ids)
    envelopes, states, errors = pipe.execute()
    out = []
    for job_id, envelope, state, error in zip(ids, envelopes, states, errors, strict=True):
        if envelope is None:
            continue  # settled or deleted since the ids were read
        info = _build(queue, job_id, envelope, state, error)
        if scores and job_id in scores:
            if info.state == "dead":
                info.died_at = scores[job_id]
            else:
                info.due_at = scores[job_id]
        out.append(info)
    return out


def list_jobs(
    queue: str,
    state: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
    filter: Filter | None = None,
    client: redis.Redis | None = None,
) -> Page:
    """One page of a queue's jobs in `state` (see STATES).

    Order: queued in the order they will run; scheduled and retrying by due
    time; dead and succeeded newest first; running in no particular order.
    Succeeded lists the latest 1,000 successes of jobs that keep a result.
    With a filter, up to 20 pages' worth of jobs are examined for one page of
    matches; a page may then hold fewer than `limit` jobs while the cursor
    still says there is more.
    """
    if state not in STATES:
        raise OpsError(f"unknown state {state!r}: expected one of {', '.join(STATES)}")
    client = client_or_default(client)
    flt = filter or Filter()
    found: list[JobInfo] = []
    budget = limit * (20 if flt else 1)
    position: str | None = None
    for batch, after in _batches(client, queue, state, cursor, limit):
        found.extend(j for j in batch if flt.matches(j))
        budget -= limit
        position = after
        if len(found) >= limit or budget <= 0:
            break
    return Page(found, position)


def _batches(
    client: redis.Redis, queue: str, state: str, cursor: str | None, size: int
) -> Iterator[tuple[list[JobInfo], str | None]]:
    """Pages of raw jobs with the cursor after each; stops at the end."""
    qk = get_keys().queue(queue)
    if state == "running":
        scan = int(cursor or 0)
        while True:
            scan, jobs = _scan_running(client, queue, qk, scan, size)
            if scan == 0:
                yield jobs, None
                return
            yield jobs, str(scan)
    offset = int(cursor or 0)
    while True:
        if state == "queued":
            ids = priority.queued_page(client, qk, offset, size)
            jobs = _hydrate(client, queue, ids)
        elif state == "succeeded":
            ids = [r.decode() for r in client.zrange(qk.done, offset, offset + size - 1, desc=True)]
            jobs = _results(client, queue, qk, ids)
        else:
            key = qk.dead if state == "dead" else qk.scheduled
            raw = client.zrange(
                key, offset, offset + size - 1, desc=state == "dead", withscores=True
            )
            ids = [r.decode() for r, _ in raw]
            scores = {r.decode(): s / 1000 for r, s in raw}
            jobs = [j for j in _hydrate(client, queue, ids, scores) if j.state == state]
        offset += size
        if len(ids) < size:
            yield jobs, None
            return
        yield jobs, str(offset)


def _scan_running(
    client: redis.Redis, queue: str, qk: QueueKeys, scan: int, size: int
) -> tuple[int, list[JobInfo]]:
    scan, entries = client.hscan(qk.state, scan, count=size)
    ids = [k.decode() for k, v in entries.items() if v.startswith(b"running")]
    jobs = [j for j in _hydrate(client, queue, ids) if j.state == "running"]
    if jobs:
        reports = client.mget([qk.progress(j.id) for j in jobs])
        for job, report in zip(jobs, reports, strict=True):
            job.progress = progress.parse(report)
    return scan, jobs


def _results(client: redis.Redis, queue: str, qk: QueueKeys, ids: list[str]) -> list[JobInfo]:
    """Successes by id; one whose result expired (or that runs again) is left out."""
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.lindex(qk.result(job_id), 0)
        pipe.hexists(qk.jobs, job_id)
    raw = pipe.execute()
    jobs = []
    for i, job_id in enumerate(ids):
        result, pending = raw[2 * i], raw[2 * i + 1]
        if result is not None and not pending:
            info = _succeeded(queue, job_id, result)
            if info.state == "succeeded":
                jobs.append(info)
    return jobs


def iter_jobs(
    queue: str, state: str, filter: Filter | None = None, client: redis.Redis | None = None
) -> Iterator[JobInfo]:
    """Every job of a queue in `state`, page by page."""
    cursor: str | None = None
    while True:
        page = list_jobs(queue, state, cursor=cursor, limit=200, filter=filter, client=client)
        yield from page.jobs
        if page.cursor is None:
            return
        cursor = page.cursor


# -- changing --------------------------------------------------------------------------

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
    raw = client.hget(qk.jobs, job_id)
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
        added = SCRIPTS.enqueue_prioritized(
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
    word = _WORDS.get(only, only)
    total = 0
    jobs_key = get_keys().queue(queue).jobs
    for chunk in _chunks(ids):
        envelopes = client.hmget(jobs_key, chunk)
        total += int(SCRIPTS.delete(client, _queue_keys(queue), [word, *chunk]))
        unique.release_deleted(client, queue, chunk, envelopes)
    return total


def run_now(queue: str, ids: Iterable[str], client: redis.Redis | None = None) -> int:
    """Queue scheduled or retrying jobs at once, at the front of the line."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    total = 0
    for chunk in _chunks(ids):
        total += int(SCRIPTS.run_now(client, [qk.scheduled, qk.queued, qk.state], chunk))
    return total


def retry_jobs(queue: str, ids: Iterable[str], client: redis.Redis | None = None) -> int:
    """Run dead and retrying jobs again now. Returns how many were queued."""
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    total = 0
    for chunk in _chunks(ids):
        total += int(SCRIPTS.retry_dead(client, [qk.dead, qk.queued, qk.state, qk.errors], chunk))
        total += int(SCRIPTS.run_now(client, [qk.scheduled, qk.queued, qk.state], chunk))
    return total


def retry_all(queue: str, state: str = "dead", client: redis.Redis | None = None) -> int:
    """Retry every dead (or every retrying) job of a queue, in batches."""
    return _all(queue, state, client, retry=True)


def delete_all(queue: str, state: str = "dead", client: redis.Redis | None = None) -> int:
    """Delete every job of a queue in `state` (dead, retrying, scheduled or queued)."""
    if state == "queued":
        from steep.ops.queues import clear

        return clear(queue, client)
    return _all(queue, state, client, retry=False)


def _all(queue: str, state: str, client: redis.Redis | None, *, retry: bool) -> int:
    if state not in ("dead", "retrying", "scheduled"):
        raise OpsError(f"cannot act on all {state} jobs (dead, retrying or scheduled)")
    client = client_or_default(client)
    qk = get_keys().queue(queue)
    key = qk.dead if state == "dead" else qk.scheduled
    word = _WORDS[state]
    total, offset = 0, 0
    while True:
        ids = [r.decode() for r in client.zrange(key, offset, offset + 499)]
        if not ids:
            return total
        seen = len(ids)
        if state != "dead":
            # the scheduled set holds both scheduled and retrying jobs
            states = client.hmget(qk.state, ids)
            ids = [i for i, s in zip(ids, states, strict=True) if text(s) == word]
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


def _chunks(ids: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    batch: list[str] = []
    for job_id in ids:
        batch.append(job_id)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
