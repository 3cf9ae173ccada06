"""Periodic (cron) entries: list them with their next and last run, pause, resume, trigger.

Reads what the workers publish in `<ns>:cron` and each entry's state hash, so it works
from any process, also one that never imported the jobs. See docs/cron.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from steep.connection import SCRIPTS, get_keys
from steep.features import cron
from steep.job import new_job_id
from steep.ops._util import OpsError, client_or_default, text


@dataclass(frozen=True, slots=True)
class CronInfo:
    name: str
    job: str
    schedule: str
    timezone: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    missed: str  # what happens to a tick no worker saw in time: "once" or "skip"
    grace: float
    source: str  # "decorator" or "steep.toml"
    paused: bool
    next_run: float | None  # epoch seconds; None while paused
    last_tick: float | None  # the newest tick handled (run, skipped or paused)
    last_run: float | None  # when its newest job was enqueued (a tick or a trigger)
    last_job_id: str | None
    seen: float  # when a worker last published the entry
    stale: bool  # no worker has published it lately: its workers are down, or it was removed


def cron_entries(client: redis.Redis | None = None) -> list[CronInfo]:
    """Every entry a worker has published, sorted by name."""
    client = client_or_default(client)
    raw = client.hgetall(get_keys().cron)
    found = {}
    for name, value in raw.items():  # type: ignore[union-attr]
        try:
            found[text(name)] = json.loads(value)
        except ValueError:
            continue  # not written by steep
    return _read(client, [found[name] for name in sorted(found)])


def cron_entry(name: str, client: redis.Redis | None = None) -> CronInfo:
    """One entry; OpsError if no worker has published it."""
    client = client_or_default(client)
    return _read(client, [_description(client, name)])[0]


def _description(client: redis.Redis, name: str) -> dict[str, Any]:
    raw = client.hget(get_keys().cron, name)
    if raw is None:
        raise OpsError(
            f"no cron entry {name!r}: a worker publishes its entries when it starts "
            "(`steep cron list` shows the known ones)"
        )
    return json.loads(raw)  # type: ignore[arg-type]


def _state_key(desc: dict[str, Any]) -> str:
    return get_keys().queue(desc["queue"]).cron(desc["name"])


def _read(client: redis.Redis, descriptions: list[dict[str, Any]]) -> list[CronInfo]:
    pipe = client.pipeline(transaction=False)
    for desc in descriptions:
        pipe.hmget(_state_key(desc), "last", "paused", "last_id", "last_at")
    now = time.time()
    out = []
    for desc, (last, paused, last_id, last_at) in zip(descriptions, pipe.execute(), strict=True):
        last_tick = int(last) / 1000 if last else None
        try:
            upcoming = cron.next_tick(desc["schedule"], desc["timezone"], max(now, last_tick or 0))
        except Exception:  # a schedule this version cannot read: show the rest
            upcoming = None
        out.append(
            CronInfo(
                name=desc["name"],
                job=desc["job"],
                schedule=desc["schedule"],
                timezone=desc["timezone"],
                queue=desc["queue"],
                args=desc.get("args", []),
                kwargs=desc.get("kwargs", {}),
                missed=desc.get("missed", "once"),
                grace=float(desc.get("grace", cron.DEFAULT_GRACE)),
                source=desc.get("source", ""),
                paused=paused is not None,
                next_run=None if paused is not None else upcoming,
                last_tick=last_tick,
                last_run=int(last_at) / 1000 if last_at else None,
                last_job_id=text(last_id) or None,
                seen=float(desc.get("seen", 0)),
                stale=now - float(desc.get("seen", 0)) > 3 * cron.PUBLISH_EVERY,
            )
        )
    return out


def pause_cron(name: str, client: redis.Redis | None = None) -> None:
    """The entry enqueues nothing until resumed; the ticks in between are never run."""
    client = client_or_default(client)
    client.hset(_state_key(_description(client, name)), "paused", str(time.time()))


def resume_cron(name: str, client: redis.Redis | None = None) -> bool:
    """The entry ticks again from its next tick on; False if it was not paused."""
    client = client_or_default(client)
    key = _state_key(_description(client, name))
    return bool(SCRIPTS.named("cron_resume")(client, [key], [int(time.time() * 1000)]))


def trigger_cron(name: str, client: redis.Redis | None = None) -> str:
    """Enqueue one run of the entry's job now, outside its schedule; returns the job id.

    The schedule is not touched: the next tick runs as planned. A paused entry can be
    triggered (pause stops the schedule, not the operator).
    """
    client = client_or_default(client)
    desc = _description(client, name)
    qk = get_keys().queue(desc["queue"])
    now = time.time()
    job_id = new_job_id()
    payload = cron.envelope(desc, job_id, {"cron": name, "trigger": "manual"}, now)
    client.sadd(get_keys().queues, desc["queue"])
    SCRIPTS.enqueue(client, [qk.queued, qk.jobs, qk.state, qk.scheduled], [job_id, payload, 0])
    client.hset(qk.cron(name), mapping={"last_id": job_id, "last_at": int(now * 1000)})
    return job_id


def forget_cron(name: str, client: redis.Redis | None = None) -> bool:
    """Drop an entry's published description and state (after removing it from the code
    or steep.toml). A worker that still has the entry publishes it again."""
    client = client_or_default(client)
    desc = _description(client, name)
    client.delete(_state_key(desc))
    return bool(client.hdel(get_keys().cron, name))
