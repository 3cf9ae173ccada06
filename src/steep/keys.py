"""Every Redis key steep uses, in one place.

Keys that belong to a queue carry the queue name as a Redis Cluster hash tag
(`steep:{default}:queued`), so every key one Lua script touches lives in one
slot. Global keys (the worker registry, the set of known queues) are only
touched by plain commands, never together with queue keys in one script.
See docs/protocol.md for what each key holds.
"""

from __future__ import annotations

from dataclasses import dataclass

# Pushed onto `queued` to wake a worker blocked on it when a job waits elsewhere (in
# `prioritized`); never a job id, since ids have no spaces (docs/protocol.md).
WAKE_TOKEN = "steep wake"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue; all share the hash tag `{name}`."""

    namespace: str
    name: str

    @property
    def _base(self) -> str:
        return f"{self.namespace}:{{{self.name}}}"

    @property
    def fence(self) -> str:
        """STRING written, then WAITed behind, to learn that the replicas have every
        earlier write of the queue's primary (min_replicas_ack; steep.replicas.fence)."""
        return f"{self._base}:fence"

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
        """ZSET job id -> -priority: waiting jobs with a priority (features.priority)."""
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

    def cron(self, entry: str) -> str:
        """HASH of one cron entry that enqueues into this queue: `last` (ms of the newest
        tick handled), `paused`, `last_id` and `last_at` (its newest job)."""
        return f"{self._base}:cron:{entry}"

    def unique(self, key: str) -> str:
        """STRING holding the id of the job that owns a uniqueness lock (with a TTL)."""
        return f"{self._base}:unique:{key}"

    def inflight(self, worker_id: str) -> str:
        """LIST of job ids a worker process has taken from this queue and not yet settled."""
        return f"{self._base}:inflight:{worker_id}"

    @property
    def done(self) -> str:
        """ZSET job id -> finish time (ms) of the latest jobs that succeeded and keep a
        result (capped; an entry whose result expired is skipped when listed)."""
        return f"{self._base}:done"

    def result(self, job_id: str) -> str:
        """LIST holding one JSON outcome (value or error), kept for the job's result_ttl."""
        return f"{self._base}:result:{job_id}"

    def progress(self, job_id: str) -> str:
        """STRING: a running job's last progress report (JSON), with a TTL; deleted after it."""
        return f"{self._base}:progress:{job_id}"

    def cursor(self, job_id: str) -> str:
        """STRING: an iterable job's saved cursor (JSON), kept until it succeeds (or a TTL)."""
        return f"{self._base}:cursor:{job_id}"


@dataclass(frozen=True, slots=True)
class LimitKeys:
    """The keys of one rate limiter; all share the hash tag `{name}`."""

    namespace: str
    name: str

    @property
    def _base(self) -> str:
        return f"{self.namespace}:limit:{{{self.name}}}"

    @property
    def leases(self) -> str:
        """ZSET (concurrency) lease id -> expiry (ms, server time): the holders right now."""
        return f"{self._base}:leases"

    @property
    def log(self) -> str:
        """ZSET (window) admission id -> admission time (ms, server time), last period only."""
        return f"{self._base}:log"

    @property
    def stats(self) -> str:
        """HASH of counters: admitted, refused."""
        return f"{self._base}:stats"


@dataclass(frozen=True, slots=True)
class BatchKeys:
    """The keys of one batch; all share the hash tag `{<batch id>}`, a slot of their own
    (so a batch's bookkeeping is one script, and a member's queue is another)."""

    namespace: str
    id: str

    @property
    def info(self) -> str:
        """HASH: counters (total, pending, succeeded, failed), state times, callbacks, outbox."""
        return f"{self.namespace}:batch:{{{self.id}}}"

    @property
    def members(self) -> str:
        """HASH member id (a job id, or a child batch id) -> `p` pending, `s`, `f` (dead)."""
        return f"{self.info}:members"

    @property
    def failed(self) -> str:
        """SET of the member ids that died (and have not succeeded since)."""
        return f"{self.info}:failed"

    @property
    def results(self) -> str:
        """HASH member position -> JSON return value (groups and chains keep them)."""
        return f"{self.info}:results"

    def all(self) -> list[str]:
        return [self.info, self.members, self.failed, self.results]


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
    def cron(self) -> str:
        """HASH cron entry name -> JSON description, published by the workers that tick it."""
        return f"{self.namespace}:cron"

    @property
    def sweep_lock(self) -> str:
        """STRING held (with an expiry) by the one worker sweeping for orphaned jobs."""
        return f"{self.namespace}:lock:sweep"

    @property
    def limits(self) -> str:
        """HASH limiter name -> JSON definition (kind, limit, lease or period), written by
        the processes that use it, so tools that do not import the app can list limiters."""
        return f"{self.namespace}:limits"

    def limit(self, name: str) -> LimitKeys:
        return LimitKeys(self.namespace, name)

    @property
    def batches(self) -> str:
        """ZSET batch id -> creation time (ms): the recent batches, capped (steep.ops)."""
        return f"{self.namespace}:batches"

    def batch(self, batch_id: str) -> BatchKeys:
        return BatchKeys(self.namespace, batch_id)

    def worker(self, worker_id: str) -> str:
        """HASH describing one worker process: host, pid, queues, concurrency, started..."""
        return f"{self.namespace}:worker:{worker_id}"

    def worker_signals(self, worker_id: str) -> str:
        """LIST of control commands for one worker process (quiet, stop), read on heartbeat."""
        return f"{self.namespace}:worker:{worker_id}:signals"

    def mail_sent(self, message_id: str) -> str:
        """STRING: the record that the server accepted a message (steep.mail), written
        before the send_mail job is acknowledged, so a rerun of that job sends nothing
        again; kept for a week."""
        return f"{self.namespace}:mail:sent:{message_id}"
