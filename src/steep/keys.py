"""Every Redis key steep uses, in one place.

Keys that belong to a queue carry the queue name as a Redis Cluster hash tag
(`steep:{default}:queued`), so every key one Lua script touches lives in one
slot. Global keys (the worker registry, the set of known queues) are only
touched by plain commands, never together with queue keys in one script.
See docs/protocol.md for what each key holds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue; all share the hash tag `{name}`."""

    namespace: str
    name: str

    @property
    def _base(self) -> str:
        return f"{self.namespace}:{{{self.name}}}"

    @property
    def queued(self) -> str:
        """LIST of job ids waiting to run; pushed on the left, taken from the right."""
        return f"{self._base}:queued"

    @property
    def jobs(self) -> str:
        """HASH job id -> JSON envelope (the job's definition)."""
        return f"{self._base}:jobs"

    @property
    def state(self) -> str:
        """HASH job id -> state word (`running` carries the worker and start time)."""
        return f"{self._base}:state"

    @property
    def prioritized(self) -> str:
        """ZSET job id -> -priority: waiting jobs enqueued with a priority (steep.priority)."""
        return f"{self._base}:prioritized"

    @property
    def scheduled(self) -> str:
        """ZSET job id -> due time (ms): scheduled jobs and failed jobs waiting to retry."""
        return f"{self._base}:scheduled"

    @property
    def dead(self) -> str:
        """ZSET job id -> time of death (ms)."""
        return f"{self._base}:dead"

    @property
    def errors(self) -> str:
        """HASH job id -> JSON of the last error (type, message, traceback, attempt)."""
        return f"{self._base}:errors"

    @property
    def stats(self) -> str:
        """HASH of counters: processed, failed."""
        return f"{self._base}:stats"

    @property
    def paused(self) -> str:
        """STRING present while the queue is paused: workers take nothing from it."""
        return f"{self._base}:paused"

    def metrics(self, minute: str) -> str:
        """HASH of one minute's (UTC `YYYYmmddHHMM`) run counts per job name:
        `<name>|count`, `<name>|failed`, `<name>|ms`, `<name>|b<i>` (run time histogram)."""
        return f"{self._base}:metrics:{minute}"

    def unique(self, key: str) -> str:
        """STRING holding the id of the job that owns a uniqueness lock (with a TTL)."""
        return f"{self._base}:unique:{key}"

    def inflight(self, worker_id: str) -> str:
        """LIST of job ids a worker process has taken from this queue and not yet settled."""
        return f"{self._base}:inflight:{worker_id}"

    def result(self, job_id: str) -> str:
        """LIST holding one JSON outcome (value or error), kept for the job's result_ttl."""
        return f"{self._base}:result:{job_id}"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one namespace (the prefix of every key, `steep` by default)."""

    namespace: str = "steep"

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.namespace, name)

    @property
    def queues(self) -> str:
        """SET of every queue name ever enqueued to."""
        return f"{self.namespace}:queues"

    @property
    def workers(self) -> str:
        """ZSET worker process id -> last heartbeat (ms)."""
        return f"{self.namespace}:workers"

    @property
    def sweep_lock(self) -> str:
        """STRING held (with an expiry) by the one worker sweeping for orphaned jobs."""
        return f"{self.namespace}:lock:sweep"

    def worker(self, worker_id: str) -> str:
        """HASH describing one worker process: host, pid, queues, concurrency, started..."""
        return f"{self.namespace}:worker:{worker_id}"

    def worker_signals(self, worker_id: str) -> str:
        """LIST of control commands for one worker process (quiet, stop), read on heartbeat."""
        return f"{self.namespace}:worker:{worker_id}:signals"
