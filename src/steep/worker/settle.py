"""Settling finished jobs: what a worker process writes to Redis when a job ends.

Successes are buffered and written by one loop, one Lua call per queue for
everything that finished while the previous call was on the wire (so a lone
job is settled at once and a busy worker makes few round trips). Failures
are rare and written one by one: a retry with backoff, or the dead set. Jobs
that feature hooks concern (steep.hooks) get their hooks' after_run before the
write and after_settle after it.
Each write runs in its own task, so cancelling a job never leaves its
record half-written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis.asyncio

from steep.connection import RETRYABLE, SCRIPTS, ArgvArgs
from steep.hooks import Defer, Discard, Hook, Outcome
from steep.job import encode, encode_envelope
from steep.keys import QueueKeys
from steep.lane import AsyncLane
from steep.settings import Settings
from steep.worker.retry import backoff_delay, error_record, reason_record

log = logging.getLogger("steep.worker")

# How many of a queue's latest successes that keep a result the operations layer can list.
DONE_INDEX_SIZE = 1000


def ack_call(
    qk: QueueKeys,
    worker_id: str,
    items: list[tuple[str, bytes | None, int]],
    day: str | None = None,
    now_ms: int | None = None,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of the ack script for successes of one queue."""
    if day is None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    keys = [qk.inflight(worker_id), qk.jobs, qk.state, qk.stats, qk.errors, qk.done]
    argv: list[Any] = [day, len(items), *(job_id for job_id, _, _ in items)]
    argv += (now_ms, DONE_INDEX_SIZE)
    for job_id, result, ttl in items:
        if result is not None:
            keys.append(qk.result(job_id))
            argv += (job_id, result, ttl)
    return keys, argv


class Settler:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        lane: AsyncLane,
        qkeys: Mapping[str, QueueKeys],
        worker_id: str,
        settings: Settings,
    ) -> None:
        self.redis = client
        self.lane = lane
        self.qkeys = qkeys
        self.worker_id = worker_id
        self.settings = settings
        self._acks: dict[str, list[tuple[str, bytes | None, int]]] = defaultdict(list)
        # successes in the ack buffer whose hooks want after_settle
        self._hooked: list[Outcome] = []
        self._ack_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # called once, after the first batch of successes is written
        self.on_first_ack: Callable[[], None] | None = None

    @property
    def busy(self) -> bool:
        """Anything finished but not yet written."""
        return bool(self._tasks) or any(self._acks.values())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def failed(self, outcome: Outcome) -> None:
        self._spawn(self._record_failure(outcome))

    def set_aside(self, outcome: Outcome) -> None:
        """A job a hook decided not to run now (deferred) or at all (discarded)."""
        self._spawn(self._record_verdict(outcome))

    def settled_by(self, hook: Hook, outcome: Outcome) -> None:
        """A run whose settlement a feature's hook writes itself (steep.hooks)."""
        self._spawn(hook.settle(self, outcome))

    async def close(self) -> None:
        """Write everything still buffered, then let run() return."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closing = True
        self._ack_ready.set()

    def succeeded(self, outcome: Outcome) -> None:
        """Buffer a success; the ack loop settles it with the others that finish meanwhile."""
        if outcome.hooks and not outcome.hooks_ran:
            self._spawn(self._after_hooks_then_ack(outcome))
            return
        self.log_success(outcome)
        self._acks[outcome.queue].append(self.entry(outcome))
        if outcome.hooks:
            self._hooked.append(outcome)
        self._ack_ready.set()

    def entry(self, outcome: Outcome) -> tuple[str, bytes | None, int]:
        """A success's line in an acknowledgement: its id, and its result if kept."""
        env = outcome.envelope
        assert env is not None
        result: bytes | None = None
        ttl = 0
        if env.result_ttl:
            ttl = env.result_ttl
            # name, time and worker let the operations layer show a finished job
            # whose envelope is gone
            record = {
                "name": env.name,
                "finished_at": round(time.time(), 3),
                "duration": round(outcome.duration, 6),
                "worker": self.worker_id,
                "attempt": env.attempt + 1,
            }
            try:
                result = encode({"value": outcome.value, **record})
            except (TypeError, msgspec.EncodeError, OverflowError) as exc:
                result = encode(
                    {
                        "error": reason_record(
                            "UnencodableResult",
                            f"the job succeeded but its return value of type "
                            f"{type(outcome.value).__qualname__} cannot be stored: {exc}",
                            env.attempt + 1,
                        ),
                        **record,
                    }
                )
        return outcome.job_id, result, ttl

    @staticmethod
    def log_success(outcome: Outcome) -> None:
        """A success's log line, written once, by whichever path acknowledges it."""
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job %s %s on %s succeeded in %.3f s",
                outcome.job_id,
                outcome.name,
                outcome.queue,
                outcome.duration,
                extra={
                    "job_id": outcome.job_id,
                    "job": outcome.name,
                    "queue": outcome.queue,
                    "duration": round(outcome.duration, 6),
                    "event": "succeeded",
                },
            )

    async def _after_hooks_then_ack(self, outcome: Outcome) -> None:
        if await self.with_retries(outcome, "run the hooks of", outcome.run_after_hooks):
            self.succeeded(outcome)

    async def with_retries(self, outcome: Outcome, doing: str, step: Any) -> bool:
        """Run `step(redis)` through connection trouble; False if it could not be done
        (the job then stays in flight and runs again later: nothing is lost)."""
        for attempt_no in range(30):
            try:
                await step(self.redis)
                return True
            except RETRYABLE as exc:
                log.warning("cannot %s job %s (%s); retrying", doing, outcome.job_id, exc)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt_no))
            except Exception:
                log.exception("cannot %s job %s; it will run again", doing, outcome.job_id)
                return False
        return False

    async def _after_settle(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for hook in outcome.hooks:
                try:
                    await hook.after_settle(self.redis, outcome)
                except Exception:
                    # the settlement stands; the feature's own fallback (a TTL, a
                    # sweep) covers what this call would have done
                    log.exception("%s hook failed after job %s", hook.name, outcome.job_id)

    async def run(self) -> None:
        """Settle successes: one Lua call per queue for everything finished meanwhile."""
        failures = 0
        while True:
            if not any(self._acks.values()):
                if self._closing:
                    return
                await self._ack_ready.wait()
                self._ack_ready.clear()
                continue
            batch, self._acks = self._acks, defaultdict(list)
            hooked, self._hooked = self._hooked, []
            try:
                await self._send_acks(batch)
                failures = 0
                if self.on_first_ack is not None:
                    # the process has done work (the supervisor's back-off resets)
                    self.on_first_ack()
                    self.on_first_ack = None
                if hooked:
                    self._spawn(self._after_settle(hooked))
            except RETRYABLE as exc:
                failures += 1
                pending = sum(map(len, batch.values()))
                if self._closing and failures > 10:
                    # they stay in our in-flight lists and go back to their queues
                    # (and run again) with the rest of the unfinished jobs
                    log.error("giving up settling %d finished jobs: %s", pending, exc)
                    return
                log.warning("cannot settle %d jobs (%s); retrying", pending, exc)
                for qname, items in batch.items():
                    self._acks[qname][:0] = items
                self._hooked[:0] = hooked
                await asyncio.sleep(0.5)

    async def _send_acks(self, batch: dict[str, list[tuple[str, bytes | None, int]]]) -> None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        now_ms = int(time.time() * 1000)
        calls = [
            ack_call(self.qkeys[qname], self.worker_id, items, day, now_ms)
            for qname, items in batch.items()
        ]
        wait = self.settings.min_replicas_ack  # 0, or WAIT for replicas (steep.replicas)
        if len(calls) == 1:
            await self.lane.run(SCRIPTS.ack, *calls[0], wait)
            return
        await asyncio.gather(*(self.lane.run(SCRIPTS.ack, k, a, wait) for k, a in calls))

    async def _record_failure(self, outcome: Outcome) -> None:
        if (
            outcome.hooks
            and not outcome.hooks_ran
            and not await self.with_retries(outcome, "run the hooks of", outcome.run_after_hooks)
        ):
            return
        env = outcome.envelope
        qk = self.qkeys[outcome.queue]
        attempt = (env.attempt if env else 0) + 1
        now = time.time()
        if outcome.reason:
            error = reason_record(outcome.reason, str(outcome.exc), attempt)
        else:
            assert outcome.exc is not None
            error = error_record(outcome.exc, attempt)
        # which worker ran the failed attempt, and when (the operator's first questions)
        error["worker"] = self.worker_id
        error["at"] = round(now, 3)
        retry = outcome.will_retry
        if env is not None:
            # a copy: the outcome's envelope stays as it ran, for the hooks
            payload = encode_envelope(msgspec.structs.replace(env, attempt=attempt))
        else:
            payload = outcome.payload
        if retry:
            assert outcome.function is not None and env is not None
            opts = outcome.function.default_options
            backoff = opts.backoff if env.backoff is None else env.backoff
            ceiling = opts.max_backoff if env.max_backoff is None else env.max_backoff
            when = now + backoff_delay(attempt, backoff, ceiling)
            mode, at, keep_result, result_ttl = "retry", when, b"", 0
        else:
            mode, at = "dead", now
            result_ttl = env.result_ttl if env and env.result_ttl else 0
            keep_result = encode({"error": error}) if result_ttl else b""
        self._log_failure(outcome, error, retry, at - now)
        argv: ArgvArgs = [
            outcome.job_id,
            payload,
            encode(error),
            mode,
            int(at * 1000),
            datetime.now(UTC).strftime("%Y-%m-%d"),
            int((now - self.settings.dead_ttl) * 1000),
            self.settings.dead_max_jobs,
            keep_result,
            result_ttl,
        ]
        keys = [
            qk.inflight(self.worker_id),
            qk.jobs,
            qk.state,
            qk.scheduled,
            qk.dead,
            qk.errors,
            qk.stats,
            qk.result(outcome.job_id),
        ]
        written = await self.with_retries(
            outcome, "record the failure of", lambda r: SCRIPTS.fail.run_async(r, keys, argv)
        )
        if written and self.settings.min_replicas_ack:
            await self._replicated(outcome, qk.fence)
        if written and outcome.hooks:
            await self._after_settle([outcome])

    async def _replicated(self, outcome: Outcome, fence_key: str) -> None:
        """min_replicas_ack behind a retry's or a dead job's record (written on the
        async client): a fence and its WAIT, in a thread; a shortfall is logged, as for
        an acknowledgement (if it is lost, the job's attempt runs again)."""
        from steep.connection import get_client
        from steep.replicas import fence

        wanted = self.settings.min_replicas_ack
        try:
            confirmed = await asyncio.to_thread(fence, get_client(), fence_key, wanted)
        except RETRYABLE as exc:
            confirmed, why = 0, f" ({exc})"
        else:
            why = ""
        if confirmed < wanted:
            log.warning(
                "the failure of job %s: %s of the %d replicas of min_replicas_ack confirmed"
                " it%s (if the primary fails now, the attempt runs again)",
                outcome.job_id,
                confirmed,
                wanted,
                why,
            )

    async def _record_verdict(self, outcome: Outcome) -> None:
        qk = self.qkeys[outcome.queue]
        env = outcome.envelope
        verdict = outcome.verdict
        assert env is not None and verdict is not None
        now = time.time()
        if isinstance(verdict, Defer):
            env.meta["deferred"] = int(env.meta.get("deferred", 0)) + 1
            keys = [qk.inflight(self.worker_id), qk.jobs, qk.state, qk.scheduled]
            argv: list[Any] = [
                outcome.job_id,
                encode_envelope(env),
                int((now + verdict.delay) * 1000),
            ]
            script = SCRIPTS.defer
            log.info(
                "job %s %s on %s deferred %.1f s: %s",
                outcome.job_id,
                env.name,
                outcome.queue,
                verdict.delay,
                verdict.reason,
                extra={"job_id": outcome.job_id, "job": env.name, "event": "deferred"},
            )
        else:
            error = reason_record(verdict.reason, verdict.message, env.attempt + 1)
            result_ttl = env.result_ttl or 0
            keys = [
                qk.inflight(self.worker_id),
                qk.jobs,
                qk.state,
                qk.errors,
                qk.stats,
                qk.result(outcome.job_id),
            ]
            argv = [
                outcome.job_id,
                verdict.counter,
                datetime.now(UTC).strftime("%Y-%m-%d"),
                encode({"error": error}) if result_ttl else b"",
                result_ttl,
            ]
            script = SCRIPTS.discard
            log.warning(
                "job %s %s on %s discarded: %s",
                outcome.job_id,
                env.name,
                outcome.queue,
                verdict.message,
                extra={"job_id": outcome.job_id, "job": env.name, "event": "discarded"},
            )
        written = await self.with_retries(
            outcome, "set aside", lambda r: script.run_async(r, keys, argv)
        )
        if written and isinstance(verdict, Discard) and outcome.hooks:
            await self._after_settle([outcome])

    def _log_failure(self, o: Outcome, error: dict[str, Any], retry: bool, delay: float) -> None:
        fields = {
            "job_id": o.job_id,
            "job": o.name,
            "queue": o.queue,
            "duration": round(o.duration, 6),
            "error": error["type"],
            "event": "retrying" if retry else "dead",
        }
        if retry:
            log.warning(
                "job %s %s on %s failed in %.3f s (%s: %s); retry %d in %.1f s",
                o.job_id,
                o.name,
                o.queue,
                o.duration,
                error["type"],
                error["message"],
                error["attempt"],
                delay,
                extra=fields,
            )
        else:
            log.error(
                "job %s %s on %s failed in %.3f s (%s: %s); moved to the dead set",
                o.job_id,
                o.name,
                o.queue,
                o.duration,
                error["type"],
                error["message"],
                extra=fields,
            )
