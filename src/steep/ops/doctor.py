"""`steep doctor`: why jobs do not run, and what to change.

Each check reads the server (and the machine's embedded servers) and returns findings: `ok`,
`warning` (worth knowing) or `problem` (jobs will not run, or can be lost). The checks, in the
order a reader would ask:

- server: which server this process talks to, and whether another steep server of the same
  project runs beside it (processes that find that one never see these jobs);
- server settings: an evicting `maxmemory-policy`, no persistence, memory close to `maxmemory`;
- workers: a queue holding jobs with no live worker listening to it;
- job names: a waiting job whose name no worker of its queue can run;
- paused queues holding jobs;
- in flight: jobs held by a worker whose heartbeat has expired, or that nobody owns;
- clocks: a machine (a worker's, or this one) whose clock is off the server's.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from steep.connection import get_keys
from steep.job import decode
from steep.ops._util import client_or_default, text
from steep.ops.workers import WorkerInfo, workers
from steep.settings import Settings, get_settings, redacted_url

# a clock this far off the server's (seconds) breaks heartbeats and schedules
SKEW_LIMIT = 2.0
# share of maxmemory above which the server is about to refuse writes
MEMORY_WARN, MEMORY_PROBLEM = 0.8, 0.9
# waiting jobs read per queue to check their names
NAME_SAMPLE = 1000


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: str  # "ok", "warning" or "problem"
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def diagnose(client: redis.Redis | None = None, settings: Settings | None = None) -> list[Finding]:
    """Every check's findings (see the module's doc)."""
    client = client_or_default(client)
    settings = settings or get_settings()
    live = _live_workers(client, settings)
    findings = [*_server(client, settings), *_server_settings(client)]
    queues = sorted(text(q) for q in cast("set[bytes]", client.smembers(get_keys().queues)))
    findings += _queues(client, queues, live)
    findings += _in_flight(client, queues, settings)
    findings += _clocks(client, live)
    return findings


def _live_workers(client: redis.Redis, settings: Settings) -> list[WorkerInfo]:
    now = _server_time(client)
    return [w for w in workers(client) if now - w.last_beat <= settings.heartbeat_timeout]


def _server_time(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def _server(client: redis.Redis, settings: Settings) -> list[Finding]:
    from steep.server.locate import other_servers, project_of, server_paths

    info = client.info("server")
    version = info.get("valkey_version") or info.get("redis_version", "?")
    kind = "Valkey" if "valkey_version" in info or info.get("server_name") == "valkey" else "Redis"
    paths = server_paths(settings)
    if settings.redis_url:
        where = f"{redacted_url(settings.redis_url)} ({kind} {version})"
    else:
        where = f"the embedded server of {paths.data_dir} ({kind} {version})"
    found = [Finding("server", "ok", f"this process uses {where}")]
    others = other_servers(paths)
    if settings.redis_url and _embedded_runs(paths):
        others = [(0, paths.data_dir), *others]
    for pid, data_dir in others:
        project = project_of(data_dir) or data_dir.parent
        by = f" (pid {pid})" if pid else ""
        found.append(
            Finding(
                "server",
                "problem",
                f"another steep server for the project {project} runs{by} with data dir "
                f"{data_dir}: processes that find it (no STEEP_REDIS_URL, another directory) "
                "never see the jobs of this one",
                "give every process of the project the same settings (one data_dir in the "
                "project's steep.toml, or the same STEEP_REDIS_URL), and stop the other with "
                "`steep server --stop`",
            )
        )
    return found


def _embedded_runs(paths: Any) -> bool:
    from steep.server.locate import _probe

    return bool(paths.socket.exists() and _probe(paths.socket, 0.5) == "up")


def _server_settings(client: redis.Redis) -> list[Finding]:
    found = []
    try:
        config = {
            **cast("dict[str, str]", client.config_get("maxmemory-policy")),
            **cast("dict[str, str]", client.config_get("save")),
        }
    except redis.ResponseError:  # CONFIG disabled (managed servers): read what INFO says
        config = {}
    memory = client.info("memory")
    persistence = client.info("persistence")
    policy = config.get("maxmemory-policy") or str(memory.get("maxmemory_policy", "?"))
    if policy == "noeviction":
        found.append(Finding("server settings", "ok", "maxmemory-policy is noeviction"))
    else:
        found.append(
            Finding(
                "server settings",
                "problem",
                f"maxmemory-policy is {policy}: under memory pressure the server deletes keys, "
                "queued jobs among them, without a word",
                "set `maxmemory-policy noeviction` (a full server then refuses new jobs "
                "instead of losing old ones)",
            )
        )
    aof = int(persistence.get("aof_enabled", 0)) == 1
    rdb = bool(config.get("save", "").strip()) if "save" in config else None
    if aof:
        found.append(Finding("server settings", "ok", "append-only file on"))
    elif rdb:
        found.append(
            Finding(
                "server settings",
                "warning",
                "no append-only file, only RDB snapshots: a crash loses the jobs of the last "
                "minutes",
                "set `appendonly yes` (`appendfsync everysec`)",
            )
        )
    else:
        found.append(
            Finding(
                "server settings",
                "problem",
                "no persistence (no append-only file, no snapshots): a restarted server has "
                "forgotten every job",
                "set `appendonly yes` (`appendfsync everysec`)",
            )
        )
    used, limit = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
    if limit:
        share = used / limit
        level = "problem" if share >= MEMORY_PROBLEM else "warning" if share >= MEMORY_WARN else ""
        if level:
            found.append(
                Finding(
                    "server settings",
                    level,
                    f"memory {used / 1048576:.1f} MiB of maxmemory {limit / 1048576:.1f} MiB "
                    f"({share:.0%}): near the limit the server refuses new jobs",
                    "raise maxmemory, or drain the queues and trim the dead sets "
                    "(`steep dead delete`)",
                )
            )
    return found


def _queues(client: redis.Redis, queues: list[str], live: list[WorkerInfo]) -> list[Finding]:
    keys = get_keys()
    pipe = client.pipeline(transaction=False)
    for name in queues:
        qk = keys.queue(name)
        pipe.llen(qk.queued)
        pipe.zcard(qk.prioritized)
        pipe.zcount(qk.scheduled, "-inf", int(time.time() * 1000))
        pipe.exists(qk.paused)
    replies = pipe.execute()
    found: list[Finding] = []
    for i, name in enumerate(queues):
        queued, prioritized, due, paused = replies[4 * i : 4 * i + 4]
        waiting = int(queued) + int(prioritized) + int(due)
        listeners = [w for w in live if name in w.queues]
        if paused:
            level = "problem" if waiting else "warning"
            found.append(
                Finding(
                    "paused queues",
                    level,
                    f"queue {name!r} is paused"
                    + (f" with {waiting} jobs waiting" if waiting else ""),
                    f"`steep queues resume {name}` when it should run again",
                )
            )
        if not waiting:
            continue
        if not listeners:
            found.append(
                Finding(
                    "workers",
                    "problem",
                    f"queue {name!r} holds {waiting} jobs ready to run and no live worker "
                    "listens to it",
                    f"start one: `steep worker <your job modules> -q {name}` (or add {name!r} "
                    "to the `queues` setting of the workers)",
                )
            )
            continue
        found += _unknown_names(client, name, listeners)
    if not [f for f in found if f.level != "ok"]:
        found.append(Finding("workers", "ok", f"{len(live)} live workers; every queue is served"))
    return found


def _unknown_names(client: redis.Redis, queue: str, listeners: list[WorkerInfo]) -> list[Finding]:
    reporting = [w for w in listeners if w.jobs is not None]
    if not reporting:
        return []  # workers that do not say what they know (an earlier release)
    known = {name for w in reporting for name in w.jobs or ()}
    qk = get_keys().queue(queue)
    ids = cast("list[bytes]", client.lrange(qk.queued, -NAME_SAMPLE, -1))
    ids += cast("list[bytes]", client.zrange(qk.prioritized, 0, NAME_SAMPLE - 1))
    if not ids:
        return []
    counts: dict[str, int] = {}
    for raw in cast("list[bytes | None]", client.hmget(qk.jobs, ids)):
        if raw is None:
            continue
        try:
            name = str(decode(raw).get("name", ""))
        except Exception:  # a malformed envelope: the worker reports it as a BadPayload
            continue
        if name not in known:
            counts[name] = counts.get(name, 0) + 1
    return [
        Finding(
            "job names",
            "problem",
            f"{count} jobs named {name!r} wait on queue {queue!r}, and no live worker of that "
            "queue can run them (they go to the dead set as UnknownJob)",
            f"make the workers import the module that defines {name!r} "
            f"(`steep worker {name.rpartition('.')[0] or 'its.module'} ...`), then "
            "`steep dead retry` what died",
        )
        for name, count in sorted(counts.items())
    ]


def _in_flight(client: redis.Redis, queues: list[str], settings: Settings) -> list[Finding]:
    keys = get_keys()
    now = _server_time(client)
    beats = {
        text(worker): score / 1000
        for worker, score in cast(
            "list[tuple[bytes, float]]", client.zrange(keys.workers, 0, -1, withscores=True)
        )
    }
    stuck: dict[str, int] = {}
    for name in queues:
        prefix = keys.queue(name).inflight("")
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
        for key in client.scan_iter(match=escaped + "*", count=1000):
            owner = text(key)[len(prefix) :]
            beat = beats.get(owner)
            if beat is not None and now - beat <= settings.heartbeat_timeout:
                continue
            held = int(client.llen(key))
            if held:
                stuck[owner] = stuck.get(owner, 0) + held
    if not stuck:
        return [Finding("in flight", "ok", "no job is held by a dead or unknown worker")]
    return [
        Finding(
            "in flight",
            "problem",
            f"{count} jobs are held by worker {owner}, which "
            + ("is not registered" if owner not in beats else "stopped sending heartbeats"),
            "any live worker returns them to their queues within heartbeat_timeout (start one "
            "if none runs); if they stay, the workers cannot reach the server",
        )
        for owner, count in sorted(stuck.items())
    ]


def _clocks(client: redis.Redis, live: list[WorkerInfo]) -> list[Finding]:
    sent = time.time()
    server = _server_time(client)
    mine = (sent + time.time()) / 2 - server
    found = []
    offsets = [("this machine", mine)] + [
        (f"worker {w.id} on {w.host}", w.skew) for w in live if w.skew is not None
    ]
    for who, skew in offsets:
        assert skew is not None
        if abs(skew) > SKEW_LIMIT:
            found.append(
                Finding(
                    "clocks",
                    "problem",
                    f"the clock of {who} is {skew:+.1f} s off the server's: heartbeats look "
                    "expired (its jobs are taken from it) or scheduled jobs run early or late",
                    "run NTP (chrony, systemd-timesyncd) on every machine",
                )
            )
    if not found:
        found.append(Finding("clocks", "ok", f"clocks within {SKEW_LIMIT:g} s of the server's"))
    return found


def report(findings: list[Finding]) -> dict[str, Any]:
    """The JSON form: {"ok": no problem, "problems": n, "findings": [...]}."""
    problems = sum(1 for f in findings if f.level == "problem")
    return {"ok": problems == 0, "problems": problems, "findings": [f.to_dict() for f in findings]}


def dumps(findings: list[Finding]) -> str:
    return json.dumps(report(findings), indent=2)
