"""Unique jobs: at most one job with the same name and arguments (or the same
`unique_key`) waits or runs in a queue at a time; enqueueing another returns it.

The lock is a STRING in the queue's slot, `<ns>:{queue}:unique:<key>`, holding the id
of the job that owns it. It is taken in the same Lua call that adds the job
(scripts/enqueue_unique.lua), so racing enqueues from any number of processes add
one job. It is released (compare-and-delete, scripts/unique_release.lua) when the job
starts (`unique_until="started"`) or when it is finished: succeeded, dead, discarded,
or deleted by an operator; never between retries.

It cannot leak: the lock always expires (`unique_for`, by default DEFAULT_LOCK_SECONDS
past the job's run time), and the enqueue script treats a lock whose holder no longer
waits or runs as free, which covers a worker killed between settling a job and
releasing its lock.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import redis
import redis.asyncio

from steep import hooks, options
from steep.connection import SCRIPTS, get_keys
from steep.hooks import Defer
from steep.job import Envelope, Job, encode_envelope
from steep.keys import WAKE_TOKEN

if TYPE_CHECKING:
    from steep.context import JobContext
    from steep.hooks import Outcome
    from steep.options import JobOptions

# How long a lock lasts past the job's run time when `unique_for` is not given: the
# bound on how long a lock can outlive a job nobody settles (a lost server write).
DEFAULT_LOCK_SECONDS = 24 * 3600

UNTIL = ("finished", "started")

# Jobs per script call in enqueue_many, so a huge batch does not block the server long.
_CHUNK = 500

_canonical = msgspec.json.Encoder(order="sorted")


def check_options(values: dict[str, Any]) -> bool:
    """A clear error for a bad uniqueness option; True when the job is unique."""
    if values["unique_for"] is not None or values["unique_key"] is not None:
        values["unique"] = True
    if values["unique_until"] not in UNTIL:
        until = values["unique_until"]
        raise ValueError(f"unique_until must be 'finished' or 'started', got {until!r}")
    if values["unique_for"] is not None and values["unique_for"] <= 0:
        raise ValueError(f"unique_for must be > 0 seconds, got {values['unique_for']}")
    if values["unique_key"] is not None and not callable(values["unique_key"]):
        key = values["unique_key"]
        raise TypeError(f"unique_key must be a function returning a str, got {key!r}")
    return bool(values["unique"])


def stamp(envelope: Envelope, opts: JobOptions) -> None:
    """Give a unique job its lock key: a digest of its name and canonical arguments
    (JSON with sorted keys), or of its name and what `unique_key` returns."""
    if opts.get("unique_key") is not None:
        value = opts.get("unique_key")(*envelope.args, **envelope.kwargs)
        if not isinstance(value, str):
            raise TypeError(
                f"unique_key of {envelope.name} must return a str, got {type(value).__name__}"
            )
        material = _canonical.encode([envelope.name, "key", value])
    else:
        try:
            material = _canonical.encode([envelope.name, envelope.args, envelope.kwargs])
        except (TypeError, msgspec.EncodeError, OverflowError):
            encode_envelope(envelope)  # raises the TypeError that names the argument
            raise
    envelope.unique_key = hashlib.blake2b(material, digest_size=16).hexdigest()
    envelope.unique_until = opts.get("unique_until")


def _lock_ms(opts: JobOptions, at: float | None) -> int:
    ahead = max(0.0, at - time.time()) if at else 0.0
    return max(1, int((ahead + (opts.get("unique_for") or DEFAULT_LOCK_SECONDS)) * 1000))


def _call(
    envelopes: Sequence[Envelope], payloads: Sequence[bytes], opts: JobOptions, at: float | None
) -> tuple[list[str], list[Any]]:
    qk = get_keys().queue(opts.queue)
    keys = [qk.queued, qk.jobs, qk.state, qk.scheduled, qk.prioritized]
    argv: list[Any] = [WAKE_TOKEN]
    run_at = 0 if at is None or at <= time.time() else int(at * 1000)
    ttl = _lock_ms(opts, at)
    for envelope, payload in zip(envelopes, payloads, strict=True):
        assert envelope.unique_key is not None
        keys.append(qk.unique(envelope.unique_key))
        until = envelope.unique_until or "finished"
        argv += (envelope.id, payload, run_at, ttl, until, envelope.priority)
    return keys, argv


def _handles(envelopes: Sequence[Envelope], holders: list[bytes]) -> list[Job]:
    out = []
    for envelope, raw in zip(envelopes, holders, strict=True):
        holder = raw.decode()
        duplicate = holder != envelope.id
        # a duplicate is another enqueue's job, whose options this one does not know
        keeps = None if duplicate else bool(envelope.result_ttl)
        out.append(Job(holder, envelope.queue, envelope.name, duplicate, keeps))
    return out


def push(
    client: redis.Redis,
    envelopes: Sequence[Envelope],
    payloads: Sequence[bytes],
    opts: JobOptions,
    at: float | None = None,
) -> list[Job]:
    """Add unique jobs; each handle is the new job's, or the live equal one's."""
    jobs: list[Job] = []
    for start in range(0, len(envelopes), _CHUNK):
        part = envelopes[start : start + _CHUNK]
        keys, argv = _call(part, payloads[start : start + _CHUNK], opts, at)
        jobs += _handles(part, SCRIPTS.named("enqueue_unique")(client, keys, argv))
    return jobs


async def apush(
    client: redis.asyncio.Redis,
    envelopes: Sequence[Envelope],
    payloads: Sequence[bytes],
    opts: JobOptions,
    at: float | None = None,
) -> list[Job]:
    jobs: list[Job] = []
    for start in range(0, len(envelopes), _CHUNK):
        part = envelopes[start : start + _CHUNK]
        keys, argv = _call(part, payloads[start : start + _CHUNK], opts, at)
        jobs += _handles(part, await SCRIPTS.named("enqueue_unique").run_async(client, keys, argv))
    return jobs


async def release(client: redis.asyncio.Redis, envelope: Envelope) -> None:
    assert envelope.unique_key is not None
    qk = get_keys().queue(envelope.queue)
    await SCRIPTS.named("unique_release").run_async(
        client, [qk.unique(envelope.unique_key), qk.jobs], [envelope.id, ""]
    )


def release_deleted(
    client: redis.Redis, queue: str, ids: Sequence[str], envelopes: Sequence[bytes | None]
) -> None:
    """After an operator deleted jobs: free the locks of those that are gone."""
    qk = get_keys().queue(queue)
    for job_id, raw in zip(ids, envelopes, strict=True):
        if raw is None or b'"unique_key"' not in raw:
            continue
        key = msgspec.json.decode(raw).get("unique_key")
        if key:
            SCRIPTS.named("unique_release")(client, [qk.unique(key), qk.jobs], [job_id, "gone"])


class UniqueHook(hooks.Hook):
    """Releases a unique job's lock when it starts or when it is finished."""

    name = "unique"

    def concerns(self, envelope: Envelope, function: Any) -> bool:
        return envelope.unique_key is not None

    async def before_run(
        self, redis: redis.asyncio.Redis, envelope: Envelope, ctx: JobContext
    ) -> hooks.Verdict | None:
        if envelope.unique_until == "started":
            await release(redis, envelope)
        return None

    async def after_settle(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        # a retry keeps the lock; a lost call here is covered by the enqueue script,
        # which treats the lock of a settled, dead or started job as free
        if outcome.envelope is None or outcome.will_retry or isinstance(outcome.verdict, Defer):
            return
        await release(redis, outcome.envelope)


class UniqueOptions(options.Feature):
    """`unique`, `unique_for`, `unique_key`, `unique_until`: the lock taken on enqueue."""

    name = "unique"
    options = {"unique": False, "unique_for": None, "unique_key": None, "unique_until": "finished"}
    push_rank = 2  # its script adds the job with its lock (and its priority, if any)

    def check(self, values: dict[str, Any]) -> bool:
        return check_options(values)

    def stamp(self, envelope: Envelope, opts: JobOptions, at: float | None) -> None:
        stamp(envelope, opts)

    def push(
        self,
        client: redis.Redis,
        envelopes: Sequence[Envelope],
        payloads: Sequence[bytes],
        opts: JobOptions,
        at: float | None,
    ) -> list[Job]:
        return push(client, envelopes, payloads, opts, at)

    async def apush(
        self,
        client: redis.asyncio.Redis,
        envelopes: Sequence[Envelope],
        payloads: Sequence[bytes],
        opts: JobOptions,
        at: float | None,
    ) -> list[Job]:
        return await apush(client, envelopes, payloads, opts, at)


hooks.register(UniqueHook())
options.register(UniqueOptions())
