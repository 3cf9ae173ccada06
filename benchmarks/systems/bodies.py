"""The job bodies, identical for every system.

Each body talks to Valkey through one module-level redis-py client per process (created lazily
under a lock, so forking workers get their own after the fork; redis-py also resets its pool on
a pid change).
Async libraries call the same synchronous client: a loopback round trip is tens of microseconds,
cheaper than an asyncio client, and it keeps the body byte-for-byte the same everywhere.

- ``noop(i)``: ``INCR bench:done`` and ``SADD bench:seen i`` in one pipelined round trip; with
  ``BENCH_BODY=incr`` in the environment (the equal-terms rows) a single ``INCR bench:done``.
- ``io_sync(i)`` / ``io_async(i)``: sleep 10 ms (``time.sleep`` / ``asyncio.sleep``), then count.
- ``lat(i)``: record ``time.time()`` at the very start into the hash ``bench:lat`` (field ``i``)
  and push ``i`` onto the list ``bench:lat:ack`` (same round trip) so the producer can wait for it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis

DONE_KEY = "bench:done"
SEEN_KEY = "bench:seen"
LAT_KEY = "bench:lat"
LAT_ACK_KEY = "bench:lat:ack"
IO_SLEEP_S = 0.010
# The equal-terms rows count with one plain INCR (no pipeline, no set of indices).
SINGLE_INCR = os.environ.get("BENCH_BODY") == "incr"

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def client() -> redis.Redis:
    # Thread pools run their first jobs at once: without the lock, two threads could each
    # create a client, and the one dropped closes its connections under the other's feet.
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


def count(i: int) -> None:
    if SINGLE_INCR:
        client().incr(DONE_KEY)
        return
    pipe = client().pipeline(transaction=False)
    pipe.incr(DONE_KEY)
    pipe.sadd(SEEN_KEY, i)
    pipe.execute()


def noop(i: int) -> None:
    count(i)


def io_sync(i: int) -> None:
    time.sleep(IO_SLEEP_S)
    count(i)


async def io_async(i: int) -> None:
    await asyncio.sleep(IO_SLEEP_S)
    count(i)


def lat(i: int) -> None:
    started = time.time()
    pipe = client().pipeline(transaction=False)
    pipe.hset(LAT_KEY, str(i), repr(started))
    pipe.lpush(LAT_ACK_KEY, str(i))
    pipe.execute()
