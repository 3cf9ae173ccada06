"""Enqueueing: build each job's envelope and push it with one Lua call.

`enqueue` costs one round trip; `enqueue_many` costs one round trip per
queue for any number of jobs. The first enqueue to a queue from a process
also records the queue's name in the global set of queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from steep import middleware, settings
from steep.connection import SCRIPTS, get_async_client, get_client, get_keys, replicas_to_wait
from steep.errors import PayloadTooLarge
from steep.job import Envelope, Job, encode_envelope, new_job_id
from steep.lane import run_idempotent
from steep.lane_cluster import is_cluster
from steep.options import JobOptions
from steep.settings import get_settings

# one call of a job in enqueue_many: its arguments, or (arguments, keyword arguments)
Call = Sequence[Any] | tuple[Sequence[Any], dict[str, Any]]

_known_queues: set[tuple[str, str]] = set()

# Where enqueued jobs go instead of Redis while steep.testing's inline or fake mode is on:
# called with the envelopes, their payloads and the options, returns their handles.
Divert = Callable[[list[Envelope], list[bytes], JobOptions, "float | None"], list[Job]]
_divert: Divert | None = None


def _check_size(envelope: Envelope, payload: bytes) -> bytes:
    """`payload`, unless it is larger than `max_payload` (PayloadTooLarge, nothing sent)."""
    limit = settings._current.max_payload if settings._current else get_settings().max_payload
    if limit and len(payload) > limit:
        raise PayloadTooLarge(
            f"cannot enqueue {envelope.name}: its payload is {len(payload):,} bytes, above "
            f"max_payload ({limit:,} bytes); pass a reference to the data (a key, a path, "
            "an id) instead of the data itself, or raise max_payload (0: no limit)"
        )
    return payload


def set_divert(divert: Divert | None) -> Divert | None:
    """Send enqueued jobs to `divert` instead of Redis (None: to Redis again); the previous."""
    global _divert
    previous, _divert = _divert, divert
    return previous


def due(when: float | timedelta | datetime) -> float:
    """Absolute due time (epoch seconds) from a delay or an aware datetime."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(
                "enqueue_at needs an aware datetime (one with a tzinfo), "
                f"got naive {when.isoformat()}"
            )
        return when.timestamp()
    if isinstance(when, timedelta):
        return time.time() + when.total_seconds()
    if isinstance(when, int | float):
        return time.time() + float(when)
    raise TypeError(f"expected seconds, a timedelta or an aware datetime, got {when!r}")


def _envelope(
    name: str,
    opts: JobOptions,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    at: float | None = None,
) -> Envelope:
    envelope = Envelope(
        id=new_job_id(),
        name=name,
        queue=opts.queue,
        args=list(args),
        kwargs=kwargs,
        retries=opts.retries,
        timeout=opts.timeout,
        result_ttl=opts.result_ttl,
        enqueued_at=time.time(),
    )
    if opts.tags:
        envelope.tags = list(opts.tags)
    if opts.per_call:
        envelope.backoff = opts.backoff
        envelope.max_backoff = opts.max_backoff
    for feature in opts.active:  # the features this job uses write their part
        feature.stamp(envelope, opts, at)
    return envelope


def _argv(job_id: str, payload: bytes, at: float | None) -> tuple[str, bytes, int]:
    run_at = 0 if at is None or at <= time.time() else int(at * 1000)
    return job_id, payload, run_at


def _split_call(
    call: Call,
) -> tuple[Sequence[Any], dict[str, Any]]:
    # enqueue_many accepts (arg, arg, ...) tuples, or ((args...), {kwargs}) pairs.
    if (
        isinstance(call, tuple)
        and len(call) == 2
        and isinstance(call[0], tuple | list)
        and isinstance(call[1], dict)
    ):
        return call[0], call[1]
    if not isinstance(call, tuple | list):
        raise TypeError(f"enqueue_many takes a tuple of arguments per job, got {call!r}")
    return call, {}


_keys_cache: dict[tuple[str, str], tuple[str, ...]] = {}


def _queue_keys(queue: str) -> tuple[str, ...]:
    keys = get_keys()
    cached = _keys_cache.get((keys.namespace, queue))
    if cached is None:
        qk = keys.queue(queue)
        cached = (qk.queued, qk.jobs, qk.state, qk.scheduled)
        if len(_keys_cache) < 1000:
            _keys_cache[(keys.namespace, queue)] = cached
    return cached


def _note_queue(queue: str) -> str | None:
    """The global queues-set key if this process has not yet recorded `queue`."""
    keys = get_keys()
    marker = (keys.namespace, queue)
    if marker in _known_queues:
        return None
    _known_queues.add(marker)
    return keys.queues


def enqueue(
    name: str,
    opts: JobOptions,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    at: float | None = None,
) -> Job:
    envelope = _envelope(name, opts, args, kwargs, at)
    chain = middleware.chains()[0]
    with middleware.around_enqueue(chain, [envelope]) if chain else _NO_MIDDLEWARE:
        payload = _check_size(envelope, encode_envelope(envelope))
        if _divert is not None:
            return _divert([envelope], [payload], opts, at)[0]
        client = get_client()
        queues_key = _note_queue(envelope.queue)
        if queues_key is not None:
            client.sadd(queues_key, envelope.queue)
        if opts.pusher is not None:
            pushed = opts.pusher.push(client, [envelope], [payload], opts, at)
            _fence(client, envelope.queue, f"job {envelope.id!r} enqueued")
            return pushed[0] if pushed else _handle(envelope)
        if replicas_to_wait():
            _enqueue_replicated(client, envelope.queue, _argv(envelope.id, payload, at))
        else:
            run_idempotent(
                SCRIPTS.enqueue,
                client,
                _queue_keys(envelope.queue),
                _argv(envelope.id, payload, at),
            )
    return _handle(envelope)


def _fence(client: Any, queue: str, what: str) -> None:
    """min_replicas_ack behind writes a script's own WAIT did not cover (the pushers')."""
    if wanted := replicas_to_wait():
        from steep.replicas import NotReplicated, fence

        confirmed = fence(client, get_keys().queue(queue).fence, wanted)
        if confirmed < wanted:
            raise NotReplicated(f"{what} on {queue!r}", confirmed, wanted)


def _enqueue_replicated(client: Any, queue: str, argv: Sequence[Any]) -> None:
    from steep.replicas import NotReplicated, run_replicated

    wanted = get_settings().min_replicas_ack
    _, confirmed = run_replicated(SCRIPTS.enqueue, client, _queue_keys(queue), argv, wanted)
    if confirmed < wanted:
        raise NotReplicated(f"job {argv[0]!r} enqueued on {queue!r}", confirmed, wanted)


async def aenqueue(
    name: str,
    opts: JobOptions,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    at: float | None = None,
) -> Job:
    envelope = _envelope(name, opts, args, kwargs, at)
    chain = middleware.chains()[0]
    with middleware.around_enqueue(chain, [envelope]) if chain else _NO_MIDDLEWARE:
        payload = _check_size(envelope, encode_envelope(envelope))
        if _divert is not None:
            return _divert([envelope], [payload], opts, at)[0]
        client = get_async_client()
        queues_key = _note_queue(envelope.queue)
        if queues_key is not None:
            await client.sadd(queues_key, envelope.queue)  # type: ignore[misc]
        if opts.pusher is not None:
            pushed = await opts.pusher.apush(client, [envelope], [payload], opts, at)
            if get_settings().min_replicas_ack:
                what = f"job {envelope.id!r} enqueued"
                await asyncio.to_thread(_fence, get_client(), envelope.queue, what)
            return pushed[0] if pushed else _handle(envelope)
        if get_settings().min_replicas_ack:
            # the sync path's WAIT, in a thread: this loop keeps running meanwhile
            argv = _argv(envelope.id, payload, at)
            await asyncio.to_thread(_enqueue_replicated, get_client(), envelope.queue, argv)
        else:
            await SCRIPTS.enqueue.run_async(
                client, _queue_keys(envelope.queue), _argv(envelope.id, payload, at)
            )
    return _handle(envelope)


_NO_MIDDLEWARE = contextlib.nullcontext()


def _prepare_many(
    name: str,
    opts: JobOptions,
    calls: Iterable[Call],
) -> tuple[list[Envelope], list[Job]]:
    envelopes = [_envelope(name, opts, *_split_call(call)) for call in calls]
    return envelopes, [_handle(e) for e in envelopes]


def _handle(envelope: Envelope) -> Job:
    return Job(envelope.id, envelope.queue, envelope.name, keeps_result=bool(envelope.result_ttl))


def _encoded(envelope: Envelope) -> bytes:
    return _check_size(envelope, encode_envelope(envelope))


def _encode_many(envelopes: list[Envelope]) -> list[Any]:
    argv: list[Any] = []
    for envelope in envelopes:
        argv += (envelope.id, _encoded(envelope), 0)
    return argv


# One script call carries at most this many jobs, so a huge batch does not
# block the server for long.
_CHUNK = 5000


def enqueue_many(
    name: str,
    opts: JobOptions,
    calls: Iterable[Call],
) -> list[Job]:
    """Enqueue many calls of one job in one round trip (chunks pipelined)."""
    envelopes, jobs = _prepare_many(name, opts, calls)
    if not jobs:
        return jobs
    chain = middleware.chains()[0]
    with middleware.around_enqueue(chain, envelopes) if chain else _NO_MIDDLEWARE:
        if _divert is not None:
            return _divert(envelopes, [_encoded(e) for e in envelopes], opts, None)
        if opts.pusher is not None:
            payloads = [_encoded(e) for e in envelopes]
            client = get_client()
            queues_key = _note_queue(opts.queue)
            if queues_key is not None:
                client.sadd(queues_key, opts.queue)
            pushed = opts.pusher.push(client, envelopes, payloads, opts, None) or jobs
            _fence(client, opts.queue, f"{len(envelopes)} jobs enqueued")
            return pushed
        _push_many(opts.queue, _encode_many(envelopes))
    return jobs


def _push_many(queue: str, argv: list[Any]) -> None:
    client = get_client()
    queues_key = _note_queue(queue)
    if queues_key is not None:
        client.sadd(queues_key, queue)
    keys = _queue_keys(queue)
    step = _CHUNK * 3
    if wanted := replicas_to_wait():
        from steep.replicas import NotReplicated, run_replicated

        for start in range(0, len(argv), step):
            chunk = argv[start : start + step]
            _, confirmed = run_replicated(SCRIPTS.enqueue, client, keys, chunk, wanted)
            if confirmed < wanted:
                raise NotReplicated(
                    f"{len(chunk) // 3} jobs enqueued on {queue!r}", confirmed, wanted
                )
        return
    if len(argv) <= step:
        SCRIPTS.enqueue(client, keys, argv)
        return
    if is_cluster(client):
        # redis-py's cluster pipelines refuse scripts: one call per chunk (one slot)
        for start in range(0, len(argv), step):
            SCRIPTS.enqueue(client, keys, argv[start : start + step])
        return
    SCRIPTS.enqueue(client, keys, argv[:3])  # loads the script once if the server lacks it
    pipe = client.pipeline(transaction=False)
    for start in range(3, len(argv), step):
        pipe.evalsha(SCRIPTS.enqueue.sha, len(keys), *keys, *argv[start : start + step])
    pipe.execute()


async def aenqueue_many(
    name: str,
    opts: JobOptions,
    calls: Iterable[Call],
) -> list[Job]:
    envelopes, jobs = _prepare_many(name, opts, calls)
    if not jobs:
        return jobs
    chain = middleware.chains()[0]
    with middleware.around_enqueue(chain, envelopes) if chain else _NO_MIDDLEWARE:
        argv = _encode_many(envelopes)
        if _divert is not None:
            return _divert(envelopes, argv[1::3], opts, None)
        client = get_async_client()
        queues_key = _note_queue(opts.queue)
        if queues_key is not None:
            await client.sadd(queues_key, opts.queue)  # type: ignore[misc]
        if opts.pusher is not None:
            pushed = await opts.pusher.apush(client, envelopes, argv[1::3], opts, None) or jobs
            if get_settings().min_replicas_ack:
                what = f"{len(envelopes)} jobs enqueued"
                await asyncio.to_thread(_fence, get_client(), opts.queue, what)
            return pushed
        if get_settings().min_replicas_ack:
            # the sync path's WAIT behind each chunk, in a thread: this loop keeps running
            await asyncio.to_thread(_push_many, opts.queue, argv)
            return jobs
        keys = _queue_keys(opts.queue)
        step = _CHUNK * 3
        for start in range(0, len(argv), step):
            await SCRIPTS.enqueue.run_async(client, keys, argv[start : start + step])
    return jobs
