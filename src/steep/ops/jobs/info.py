"""A job as an operator sees it: the JobInfo record, the state names, and reading
one job (get_job) or finding which queue holds each of some ids (locate_jobs).

A job's record is spread over its queue's hashes (envelope, state word, last
error), sets (scheduled, dead) and its own keys (result, progress, cursor);
get_job reads them all with one pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from steep.connection import get_keys
from steep.features import progress
from steep.job import decode
from steep.ops._util import client_or_default, text
from steep.ops.queues import queue_names

STATES = ("queued", "scheduled", "retrying", "running", "interrupted", "dead", "succeeded")
# the state words stored in the `state` hash, by the state names shown to operators
STATE_WORDS = {
    "scheduled": "scheduled",
    "retrying": "retrying",
    "dead": "dead",
    "interrupted": "interrupted",
}
# "failed" is the word earlier releases stored for "retrying": still read, for one release
_NAMES = {**{v: k for k, v in STATE_WORDS.items()}, "failed": "retrying"}


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


def created_at(job_id: str) -> float | None:
    """When steep made the id (its first 14 hex digits are microseconds), if it did."""
    try:
        return int(job_id[:14], 16) / 1_000_000 if len(job_id) == 26 else None
    except ValueError:
        return None


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
        return from_result(queue, job_id, result)
    info = from_envelope(queue, job_id, envelope, state, error)
    if info.state == "running":
        info.progress = progress.parse(report)
    info.cursor = progress.parse(cursor)
    info.due_at = due / 1000 if due is not None else None
    info.died_at = died / 1000 if died is not None else None
    if result is not None:
        info.result = decode(result)
    return info


def from_result(queue: str, job_id: str, result: bytes) -> JobInfo:
    """A settled job, from its kept result (its envelope is gone)."""
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


def from_envelope(
    queue: str, job_id: str, envelope: bytes, state: bytes | None, error: bytes | None
) -> JobInfo:
    """A job that holds a record, from its envelope, state word and last error."""
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


def locate_jobs(job_ids: list[str], client: redis.Redis | None = None) -> list[tuple[str, str]]:
    """(job id, queue) for each id, the queue where its record is ('' if none): members
    of one batch may live in different queues."""
    client = client_or_default(client)
    names = queue_names(client)
    if not job_ids or not names:
        return [(job_id, "") for job_id in job_ids]
    keys = get_keys()
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        for name in names:
            pipe.hexists(keys.queue(name).jobs, job_id)
    found = pipe.execute()
    out = []
    for i, job_id in enumerate(job_ids):
        hits = found[i * len(names) : (i + 1) * len(names)]
        out.append((job_id, next((n for n, hit in zip(names, hits, strict=True) if hit), "")))
    return out
