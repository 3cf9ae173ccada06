"""The heartbeat: a thread that keeps a worker process visible and its peers honest.

On every beat it
- records the process as alive (the `workers` ZSET) with what it is doing;
- reads the process's control channel (quiet, stop) sent by operators;
- returns the in-flight jobs of any worker process whose heartbeat expired
  (killed, machine lost) to the front of their queues;
- returns ids in this process's own in-flight lists that it does not know
  about (a claim whose reply was lost on a broken connection);
- checks memory (recycle) and, under a supervisor, that the parent lives.
It runs in its own thread with its own connection, so a job that blocks the
event loop does not make the process look dead.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, cast

import psutil
import redis

from steep import registry
from steep.connection import RETRYABLE, SCRIPTS, make_client
from steep.keys import Keys

if TYPE_CHECKING:
    from redis.typing import EncodableT

    from steep.worker.process import WorkerProcess

log = logging.getLogger("steep.worker")
# seconds between measurements of this machine's clock against the server's (steep doctor)
CLOCK_EVERY = 10.0


def requeue_worker(
    client: redis.Redis, keys: Keys, worker_id: str, queues: list[str], *, forget: bool = True
) -> int:
    """Return every in-flight job of `worker_id` to its queue, and forget the worker.

    forget=False keeps the worker's registration so that the heartbeat reaper
    sweeps its in-flight lists once more when it expires: the server may
    still hand a job to a blocked fetch of a process that has just died,
    until it notices the closed connection.
    """
    moved = 0
    for name in queues:
        qk = keys.queue(name)
        moved += SCRIPTS.requeue(
            client, [qk.inflight(worker_id), qk.queued, qk.state, qk.jobs, qk.prioritized]
        )
    if not forget:
        return moved
    pipe = client.pipeline(transaction=False)
    pipe.zrem(keys.workers, worker_id)
    # one key per DEL: the two may live in different cluster slots
    pipe.delete(keys.worker(worker_id))
    pipe.delete(keys.worker_signals(worker_id))
    pipe.execute()
    return moved


def worker_queues(client: redis.Redis, keys: Keys, worker_id: str) -> list[str]:
    raw = client.hget(keys.worker(worker_id), "queues")
    if raw:
        return list(json.loads(raw))
    # no description left: look in every known queue
    return sorted(q.decode() for q in cast("set[bytes]", client.smembers(keys.queues)))


def reap_expired(client: redis.Redis, keys: Keys, timeout: float) -> dict[str, int]:
    """Requeue the jobs of every worker process silent for longer than `timeout` seconds."""
    cutoff = int((time.time() - timeout) * 1000)
    reaped: dict[str, int] = {}
    for raw in cast("list[bytes]", client.zrangebyscore(keys.workers, "-inf", cutoff)):
        worker_id = raw.decode()
        moved = requeue_worker(client, keys, worker_id, worker_queues(client, keys, worker_id))
        reaped[worker_id] = moved
        log.warning(
            "worker %s stopped sending heartbeats; returned its %d in-flight jobs", worker_id, moved
        )
    return reaped


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def sweep_orphans(client: redis.Redis, keys: Keys) -> int:
    """Return jobs from in-flight lists whose worker is not registered at all.

    The safety net under the reaper: a registration lost or deleted (an
    operator's FLUSH of the wrong keys, a crash between two steps) must not
    strand jobs forever.
    """
    live = {w.decode() for w in cast("list[bytes]", client.zrange(keys.workers, 0, -1))}
    moved = 0
    for raw in cast("set[bytes]", client.smembers(keys.queues)):
        qk = keys.queue(raw.decode())
        prefix = qk.inflight("")
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
            worker_id = key.decode()[len(prefix) :]
            if worker_id in live:
                continue
            count = SCRIPTS.requeue(
                client, [key.decode(), qk.queued, qk.state, qk.jobs, qk.prioritized]
            )
            if count:
                log.warning(
                    "returned %d jobs left in flight by unregistered worker %s", count, worker_id
                )
            moved += count
    return moved


class Heartbeat(threading.Thread):
    def __init__(self, process: WorkerProcess) -> None:
        super().__init__(name="steep-heartbeat", daemon=True)
        self.process = process
        self.settings = process.settings
        self.keys = process.keys
        self.client = make_client(self.settings)
        self._stopped = threading.Event()
        self._parent = os.getppid()
        self._ps = psutil.Process()
        self._suspects: set[tuple[str, str]] = set()
        self._last_sweep = 0.0
        self._last_reconcile = time.monotonic()
        self.started = time.time()
        self._skew: float | None = None
        self._last_clock = -CLOCK_EVERY  # the first beat measures the clock offset
        self.register()

    def register(self) -> None:
        p = self.process
        info: dict[EncodableT, EncodableT] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": json.dumps([q.name for q in p.queues]),
            "weights": json.dumps({q.name: q.weight for q in p.queues}),
            "concurrency": p.concurrency,
            "started": self.started,
            # the job names this process can run (steep doctor: a waiting job none knows)
            "jobs": json.dumps(registry.names()),
        }
        if p.restarts:
            # the restarts of this process's slot: {"count", "window", "total", "last_at",
            # "last_cause"} (worker/restarts.py)
            info["restarts"] = json.dumps(p.restarts)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.worker(p.worker_id), mapping=info)
        pipe.zadd(self.keys.workers, {p.worker_id: int(time.time() * 1000)})
        pipe.execute()

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=10)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.keys.workers, self.process.worker_id)
            # one key per DEL: the two may live in different cluster slots
            pipe.delete(self.keys.worker(self.process.worker_id))
            pipe.delete(self.keys.worker_signals(self.process.worker_id))
            pipe.execute()
        except RETRYABLE as exc:
            log.warning("could not unregister worker %s: %s", self.process.worker_id, exc)
        finally:
            self.client.close()

    def run(self) -> None:
        interval = self.settings.heartbeat_interval
        while not self._stopped.wait(interval):
            try:
                self.beat()
            except RETRYABLE as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")

    def beat(self) -> None:
        p = self.process
        rss = self._ps.memory_info().rss
        running = p.snapshot()
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keys.workers, {p.worker_id: int(time.time() * 1000)})
        pipe.hset(
            self.keys.worker(p.worker_id),
            mapping={
                "beat": time.time(),
                "rss": rss,
                "busy": len(running),
                "processed": p.processed,
                "failed": p.failed,
                "quiet": int(p._quiet),
                "running": json.dumps([[q, j, s] for q, j, s in running]),
            },
        )
        if self._skew is not None:
            # this machine's clock minus the server's, measured on the previous beat
            pipe.hset(self.keys.worker(p.worker_id), "skew", round(self._skew, 3))
        pipe.lpop(self.keys.worker_signals(p.worker_id), 10)
        *_, popped = pipe.execute()
        if time.monotonic() - self._last_clock >= CLOCK_EVERY:
            # a command of its own: a cluster's pipeline takes only keyed commands
            self._last_clock = time.monotonic()
            sent = time.time()
            seconds, micros = self.client.time()
            # the server read its clock about halfway through the round trip
            self._skew = (sent + time.time()) / 2 - (seconds + micros / 1e6)
        signals = popped or []
        for raw in signals:
            self._control(raw.decode())
        reap_expired(self.client, self.keys, self.settings.heartbeat_timeout)
        sweep_every = max(30.0, 3 * self.settings.heartbeat_timeout)
        # one sweeper at a time across all workers: the lock expires on its own
        if time.monotonic() - self._last_sweep >= sweep_every and self.client.set(
            self.keys.sweep_lock, p.worker_id, nx=True, ex=int(sweep_every)
        ):
            self._last_sweep = time.monotonic()
            sweep_orphans(self.client, self.keys)
        if time.monotonic() - self._last_reconcile >= max(5.0, self.settings.heartbeat_timeout):
            self._last_reconcile = time.monotonic()
            self.reconcile({job_id for _, job_id, _ in running})
        if p.max_memory_mb and rss > p.max_memory_mb * 1024 * 1024:
            p.threadsafe(
                p.request_recycle,
                f"memory {rss / 1048576:.0f} MiB is over the limit of {p.max_memory_mb:.0f} MiB",
            )
        if p.supervised and os.getppid() != self._parent:
            p.threadsafe(p.request_stop, "the supervisor is gone")

    def _control(self, command: str) -> None:
        p = self.process
        log.info("received %r from the control channel", command)
        if command == "quiet":
            p.threadsafe(p.request_quiet)
        elif command == "stop":
            p.threadsafe(p.request_stop, "stop requested remotely")
        elif command.startswith("cancel "):
            # "cancel <queue> <job id>"
            job_id = command.rsplit(" ", 1)[-1]
            p.threadsafe(p.cancel_job, job_id)
        elif command.startswith("interrupt "):
            # "interrupt <queue> <job id>": an iterable job stops at its next step
            p.threadsafe(p.interrupt_job, command.rsplit(" ", 1)[-1])
        else:
            log.warning("unknown control command %r ignored", command)

    def reconcile(self, known: set[str]) -> None:
        """Return ids in our in-flight lists that this process is not running.

        An id is returned only if it was already unknown one pass earlier, so a
        claim whose reply is still on its way is never mistaken for a stray.
        """
        p = self.process
        suspects: set[tuple[str, str]] = set()
        for name, qk in p.qkeys.items():
            inflight = cast("list[bytes]", self.client.lrange(qk.inflight(p.worker_id), 0, -1))
            ids = {raw.decode() for raw in inflight}
            suspects |= {(name, i) for i in ids - known}
        strays = suspects & self._suspects
        self._suspects = suspects - strays
        for name, job_id in strays:
            qk = p.qkeys[name]
            SCRIPTS.requeue(
                self.client,
                [qk.inflight(p.worker_id), qk.queued, qk.state, qk.jobs, qk.prioritized],
                [job_id],
            )
            log.warning("returned stray in-flight job %s to queue %s", job_id, name)
