"""Listing a queue's jobs in one state: pages with cursors, filters, and iterating
over all of them.

Listing reads one page of ids with one command and the page's records with
one pipeline: the cost of a page never depends on the size of the queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import redis

from steep.connection import get_keys
from steep.features import priority, progress
from steep.keys import QueueKeys
from steep.ops._util import OpsError, client_or_default
from steep.ops.jobs.info import STATES, JobInfo, from_envelope, from_result


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
            done = cast("list[bytes]", client.zrange(qk.done, offset, offset + size - 1, desc=True))
            ids = [r.decode() for r in done]
            jobs = _results(client, queue, qk, ids)
        else:
            key = qk.dead if state == "dead" else qk.scheduled
            raw = cast(
                "list[tuple[bytes, float]]",
                client.zrange(
                    key, offset, offset + size - 1, desc=state == "dead", withscores=True
                ),
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
    scan, entries = cast("tuple[int, dict[bytes, bytes]]", client.hscan(qk.state, scan, count=size))
    ids = [k.decode() for k, v in entries.items() if v.startswith(b"running")]
    jobs = [j for j in _hydrate(client, queue, ids) if j.state == "running"]
    if jobs:
        reports = cast("list[bytes | None]", client.mget([qk.progress(j.id) for j in jobs]))
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
            info = from_result(queue, job_id, result)
            if info.state == "succeeded":
                jobs.append(info)
    return jobs


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
        info = from_envelope(queue, job_id, envelope, state, error)
        if scores and job_id in scores:
            if info.state == "dead":
                info.died_at = scores[job_id]
            else:
                info.due_at = scores[job_id]
        out.append(info)
    return out
