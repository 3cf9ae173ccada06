"""Worker processes: who is alive, what each is running, and remote quiet/stop.

Workers describe themselves on every heartbeat (`<ns>:worker:<id>`); commands
reach them through their control list, read on the next beat.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from steep.connection import get_keys
from steep.features import progress
from steep.job import decode
from steep.ops._util import OpsError, client_or_default


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started: float
    last_beat: float
    busy: int
    rss: int
    processed: int
    failed: int
    quiet: bool
    # {"queue", "id", "name", "started", "runtime", "progress"} for each job running now
    # (progress: the job's last report {"fraction", "message", "at"}, or None)
    running: list[dict[str, Any]] = field(default_factory=list)
    # the restarts of the supervisor slot this process runs in, or None (never restarted):
    # {"count" (within "window" seconds), "window", "total", "last_at", "last_cause"}
    restarts: dict[str, Any] | None = None
    # the job names it can run, and its machine's clock minus the server's (seconds); None
    # when it does not say (a worker of an earlier release, or before its second beat)
    jobs: list[str] | None = None
    skew: float | None = None

    @property
    def restarts_text(self) -> str:
        """ "restarted 14 times in 10 min, last: SIGKILL", or "" (never restarted)."""
        r = self.restarts
        if not r or not r.get("total"):
            return ""
        times = "once" if r["count"] == 1 else f"{r['count']} times"
        last = f", last: {r['last_cause']}" if r.get("last_cause") else ""
        return f"restarted {times} in {int(r['window'] // 60)} min{last}"


def workers(client: redis.Redis | None = None) -> list[WorkerInfo]:
    """Every registered worker process, oldest heartbeat first."""
    client = client_or_default(client)
    keys = get_keys()
    entries = cast("list[tuple[bytes, float]]", client.zrange(keys.workers, 0, -1, withscores=True))
    pipe = client.pipeline(transaction=False)
    for worker_id, _ in entries:
        pipe.hgetall(keys.worker(worker_id.decode()))
    now = time.time()
    out = []
    for (worker_id, beat_ms), info in zip(entries, pipe.execute(), strict=True):
        h = {k.decode(): v.decode() for k, v in info.items()}
        out.append(
            WorkerInfo(
                id=worker_id.decode(),
                host=h.get("host", "?"),
                pid=int(h.get("pid", 0)),
                queues=json.loads(h.get("queues", "[]")),
                concurrency=int(h.get("concurrency", 0)),
                started=float(h.get("started", 0)),
                last_beat=beat_ms / 1000,
                busy=int(h.get("busy", 0)),
                rss=int(h.get("rss", 0)),
                processed=int(h.get("processed", 0)),
                failed=int(h.get("failed", 0)),
                quiet=h.get("quiet") == "1",
                running=[
                    {
                        "queue": q,
                        "id": j,
                        "name": "",
                        "started": s,
                        "runtime": max(0.0, now - s),
                        "progress": None,
                    }
                    for q, j, s, *_ in json.loads(h.get("running", "[]"))
                ],
                restarts=json.loads(h["restarts"]) if "restarts" in h else None,
                jobs=json.loads(h["jobs"]) if "jobs" in h else None,
                skew=float(h["skew"]) if "skew" in h else None,
            )
        )
    _name_running(client, out)
    return out


def _name_running(client: redis.Redis, infos: list[WorkerInfo]) -> None:
    keys = get_keys()
    running = [r for w in infos for r in w.running]
    if not running:
        return
    pipe = client.pipeline(transaction=False)
    for r in running:
        pipe.hget(keys.queue(r["queue"]).jobs, r["id"])
        pipe.get(keys.queue(r["queue"]).progress(r["id"]))
    replies = pipe.execute()
    for r, raw, report in zip(running, replies[::2], replies[1::2], strict=True):
        r["progress"] = progress.parse(report)
        if raw:
            try:
                r["name"] = decode(raw).get("name", "")
            except Exception:  # a malformed envelope keeps an empty name
                continue


def running_jobs(
    client: redis.Redis | None = None, infos: list[WorkerInfo] | None = None
) -> list[dict[str, Any]]:
    """Every job running now, longest-running first, with its worker (from `infos`, the
    workers already read, if given)."""
    infos = workers(client) if infos is None else infos
    rows = [{**r, "worker": w.id, "host": w.host} for w in infos for r in w.running]
    return sorted(rows, key=lambda r: r["started"])


def _signal(worker_id: str, command: str, client: redis.Redis | None) -> None:
    client = client_or_default(client)
    keys = get_keys()
    if client.zscore(keys.workers, worker_id) is None:
        raise OpsError(f"no worker {worker_id} is registered")
    client.rpush(keys.worker_signals(worker_id), command)


def quiet(worker_id: str, client: redis.Redis | None = None) -> None:
    """The worker takes no new job and finishes the ones it has (it keeps running)."""
    _signal(worker_id, "quiet", client)


def stop(worker_id: str, client: redis.Redis | None = None) -> None:
    """The worker shuts down gracefully (its supervisor, if any, replaces nothing)."""
    _signal(worker_id, "stop", client)
