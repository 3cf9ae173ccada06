"""Lean lanes: steep's hottest script calls on raw connections, below redis-py's command path.

A single `enqueue()` is one `EVALSHA` round trip. Through redis-py 8 that
command costs more client CPU (connection pool bookkeeping, the retry
wrapper, event dispatch, observability recorders, response callbacks) than
the server spends running the script, and it caps how many jobs one producer
can push. A lane is a connection opened by redis-py's own connection class
(so URLs, TLS, unix sockets, ACL users, the database and the client name work
exactly as for the client) that is then driven directly: the command is
packed by hiredis, written with one `sendall` and its reply parsed by a
hiredis reader.

Only scripts that are safe to run twice go through a lane (steep's enqueue
script adds a job id only once: `HSETNX`). Anything unusual, such as a
broken or closed connection, a timeout, a server without the script or
any error reply, hands the call to the regular redis-py path, which loads the
script, retries connection errors with backoff and raises the proper redis-py
exception. A lane whose reply was not fully read is closed, never reused.

Lanes are per process (a forked child opens its own; the parent's sockets
are left alone) and safe under threads: a thread takes an idle lane from the
pool, or opens one, and gives it back after the reply.

A worker's claims and acknowledgements go through an `AsyncLane`: one
connection of the worker's event loop on which calls are pipelined (each call
appends a future, a reader task resolves them in order). redis-py's asyncio
client spends about 100 µs of CPU on a call that costs the lane under 30 µs.
Those scripts are not all safe to repeat, so the async lane never repeats a
call whose reply was lost: it raises ConnectionError, and the worker's own
recovery applies (an ack is sent again; a claim's jobs stay in the worker's
in-flight list until the stray check returns them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

try:
    import hiredis
except ImportError:  # pragma: no cover - redis[hiredis] is a dependency
    hiredis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from steep.connection import Script

log = logging.getLogger("steep.lane")

# Idle lanes kept per process; more threads than this open and close their own.
MAX_IDLE = 16

_FALLBACK = object()


class Lane:
    """One connection, with its socket and a hiredis reader."""

    __slots__ = ("conn", "reader", "sock")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sock = conn._sock
        self.reader = hiredis.Reader()

    def call(self, packed: bytes) -> Any:
        self.sock.sendall(packed)
        reader = self.reader
        while True:
            reply = reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            reader.feed(data)

    def close(self) -> None:
        # redis-py shuts a socket down only in the process that opened it: in a forked
        # child this just closes the child's copy and leaves the parent's connection alone
        with contextlib.suppress(Exception):  # closing a broken connection must not raise
            self.conn.disconnect()


class Lanes:
    """The idle lanes of one process for one redis-py client."""

    def __init__(self, client: redis.Redis) -> None:
        self.pid = os.getpid()
        self.client = client
        self.idle: list[Lane] = []
        self.broken = False

    def _open(self) -> Lane | None:
        pool = self.client.connection_pool
        # one attempt: when the server is away, the regular path's retries take over
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        conn = pool.connection_class(**kwargs)
        try:
            conn.connect()
        except (redis.RedisError, OSError):
            with contextlib.suppress(Exception):
                conn.disconnect()
            return None
        if getattr(conn, "_sock", None) is None:
            # a connection class that keeps its socket elsewhere: use redis-py only
            self.broken = True
            conn.disconnect()
            return None
        return Lane(conn)

    def call(self, packed: bytes) -> Any:
        """The reply, or _FALLBACK when the regular path must take the call."""
        lane: Lane | None
        try:
            lane = self.idle.pop()
        except IndexError:
            lane = self._open()
            if lane is None:
                return _FALLBACK
        try:
            reply = lane.call(packed)
        except (OSError, hiredis.ProtocolError):
            lane.close()
            return _FALLBACK
        except BaseException:
            # interrupted between the request and its reply: the lane is out of step
            lane.close()
            raise
        if isinstance(reply, hiredis.ReplyError):
            if str(reply).startswith("READONLY"):
                lane.close()  # a primary demoted by a failover: the next lane finds the new one
            else:
                self._give_back(lane)
            return _FALLBACK
        self._give_back(lane)
        return reply

    def _give_back(self, lane: Lane) -> None:
        if len(self.idle) < MAX_IDLE:
            self.idle.append(lane)
        else:
            lane.close()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


_lock = threading.Lock()
_lanes: Lanes | None = None


def _lanes_for(client: redis.Redis) -> Lanes | None:
    global _lanes
    current = _lanes
    if current is not None and current.client is client and current.pid == os.getpid():
        return None if current.broken else current
    if hiredis is None or not hasattr(client, "connection_pool"):
        return None  # a cluster client: run_idempotent picks the lanes of a node
    with _lock:
        if _lanes is None or _lanes.client is not client or _lanes.pid != os.getpid():
            if _lanes is not None:
                _lanes.close()  # in a forked child: only the child's copies of the sockets
            _lanes = Lanes(client)
        return _lanes


def run_idempotent(
    script: Script, client: redis.Redis, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """Run `script` (safe to run twice) on a lane of `client`; the regular path on trouble."""
    lanes = _lanes_for(client)
    if lanes is None and keys and hasattr(client, "get_node_from_key"):
        lanes = _node_lanes(client, keys[0])
    if lanes is not None:
        reply = lanes.call(hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args)))
        if reply is not _FALLBACK:
            return reply
    return script(client, keys, args)


# A cluster client's lanes: one Lanes per primary (by its plain redis-py client), of
# this process only. A call routed by a stale slot table gets MOVED or ASK, which is an
# error reply: the regular path (redis-py's cluster client) follows it and refreshes
# the table the next call is routed by (see lane_cluster.py).
_node_lanes_by_id: dict[tuple[int, int], Lanes] = {}


def _node_lanes(client: Any, key: str) -> Lanes | None:
    try:
        node = client.get_node_from_key(key)
    except (redis.RedisError, LookupError):
        return None
    plain = getattr(node, "redis_connection", None)
    if plain is None:
        return None
    slot = (os.getpid(), id(plain))
    lanes = _node_lanes_by_id.get(slot)
    if lanes is None or lanes.client is not plain:
        with _lock:
            lanes = _node_lanes_by_id[slot] = Lanes(plain)
    return None if lanes.broken else lanes


def close_lanes() -> None:
    """Close this process's lanes (when its clients are reset)."""
    global _lanes
    with _lock:
        if _lanes is not None:
            _lanes.close()
        _lanes = None
        for slot, lanes in list(_node_lanes_by_id.items()):
            if slot[0] == os.getpid():
                lanes.close()
        _node_lanes_by_id.clear()


def reply_error(message: str) -> Exception:
    """The redis-py exception for an error reply (LOADING is a retryable ConnectionError)."""
    try:
        from redis._parsers.base import BaseParser

        error = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    except Exception:  # another redis-py layout: the plain class
        return ResponseError(message)
    return error if isinstance(error, Exception) else ResponseError(message)


# How long an acknowledgement waits for its replicas (min_replicas_ack; steep.replicas)
WAIT_TIMEOUT_MS = 5000

# Past this many bytes waiting in the socket buffer, a call waits for it to drain.
_HIGH_WATER = 1 << 20


class AsyncLane:
    """Pipelined script calls on one raw connection of the running event loop."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.disabled = hiredis is None
        self._conn: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._reading: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        # script sha -> its SCRIPT LOAD in progress / how many have finished
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._loads: dict[str, int] = {}
        # (the connection's writer, its CLIENT ID), asked once per connection
        self._client_id: tuple[asyncio.StreamWriter, int] | None = None

    async def run(
        self, script: Script, keys: Sequence[str], args: Sequence[Any] = (), wait: int = 0
    ) -> Any:
        """Run `script` and return its reply; ConnectionError when the reply is lost.
        With `wait`, a WAIT for that many replicas follows on the same connection, and a
        shortfall is logged (steep.replicas)."""
        for _ in range(2):
            writer = self._writer
            if writer is None:
                writer = await self._open()
                if writer is None:
                    return await script.run_async(self.client, keys, args)
            loads = self._loads.get(script.sha, 0)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending.append(future)
            writer.write(hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args)))
            if wait:
                waited = self.send("WAIT", wait, WAIT_TIMEOUT_MS)
            if writer.transport.get_write_buffer_size() > _HIGH_WATER:
                with contextlib.suppress(OSError):  # a broken connection fails `future`
                    await writer.drain()
            if wait:
                reply, confirmed = await asyncio.gather(future, waited)
                if not isinstance(confirmed, int) or confirmed < wait:
                    log.warning(
                        "%s: %s of the %d replicas of min_replicas_ack confirmed it within "
                        "%g s (if the primary fails now, it is done again)",
                        script.name,
                        confirmed,
                        wait,
                        WAIT_TIMEOUT_MS / 1000,
                    )
            else:
                reply = await future
            if not isinstance(reply, hiredis.ReplyError):
                return reply
            message = str(reply)
            if message.startswith("READONLY"):
                self._drop(writer)  # a primary demoted by a failover: reconnect
                raise ConnectionError(f"the server became a replica: {message}")
            if not message.startswith("NOSCRIPT"):
                raise reply_error(message)
            # a fresh or restarted server: the script did not run; load it and send again
            # (unless a load finished since this call went out: then only send again)
            if self._loads.get(script.sha, 0) == loads:
                await self._load(script)
        raise ResponseError(f"the server keeps forgetting the {script.name} script")

    async def _load(self, script: Script) -> None:
        """SCRIPT LOAD once for all the calls that met NOSCRIPT together (a pipeline of
        them after a restart would otherwise open a connection each)."""
        loading = self._loading.get(script.sha)
        if loading is None:
            loading = asyncio.ensure_future(self.client.script_load(script.source))
            self._loading[script.sha] = loading

            def loaded(done: asyncio.Future[Any]) -> None:
                del self._loading[script.sha]
                if not done.cancelled() and done.exception() is None:
                    self._loads[script.sha] = self._loads.get(script.sha, 0) + 1

            loading.add_done_callback(loaded)
        await asyncio.shield(loading)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        """Give this connection up; the next call opens another (its reader ends)."""
        if self._writer is writer:
            self._conn = self._writer = None
        writer.close()

    async def open(self) -> bool:
        """Connect if needed; False when this lane cannot be used (redis-py must serve)."""
        return self._writer is not None or await self._open() is not None

    async def client_id(self) -> int:
        """The CLIENT ID of this lane's connection (after `open()`; asked once per
        connection), so that another connection can CLIENT UNBLOCK a command sent here."""
        writer = self._writer
        if writer is None:
            raise ConnectionError("the connection to Redis was lost")
        if self._client_id is None or self._client_id[0] is not writer:
            self._client_id = (writer, int(await self.send("CLIENT", "ID")))
        return self._client_id[1]

    def send(self, *command: Any) -> asyncio.Future[Any]:
        """Write one command at once (after `open()`): its reply, or a hiredis.ReplyError
        for an error reply, arrives in the future; calls sent together are pipelined."""
        writer = self._writer
        if writer is None:
            raise ConnectionError("the connection to Redis was lost")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        writer.write(hiredis.pack_command(command))
        return future

    async def _open(self) -> asyncio.StreamWriter | None:
        async with self._opening:
            if self._writer is not None or self.disabled:
                return self._writer
            pool = self.client.connection_pool
            # one attempt: the worker's own loops back off and log while the server is away
            kwargs = {**pool.connection_kwargs, "retry": AsyncRetry(NoBackoff(), 0)}
            conn: Any = pool.connection_class(**kwargs)
            try:
                await conn.connect()
            except (redis.RedisError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                raise ConnectionError(f"cannot connect to Redis: {exc}") from exc
            reader: asyncio.StreamReader | None = getattr(conn, "_reader", None)
            writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
            if reader is None or writer is None:
                # a connection class that keeps its streams elsewhere: use redis-py only
                self.disabled = True
                await conn.disconnect()
                return None
            self._conn, self._writer = conn, writer
            self._reading = asyncio.create_task(self._read(conn, reader), name="steep-lane")
            return writer

    async def _read(self, conn: Any, reader: asyncio.StreamReader) -> None:
        parser = hiredis.Reader()
        error: BaseException
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future = self._pending.popleft()
                    if not future.done():  # its caller may have been cancelled
                        future.set_result(reply)
        except (OSError, hiredis.ProtocolError, IndexError) as exc:
            error = ConnectionError(f"lost the connection to Redis: {exc}")
        except asyncio.CancelledError:
            error = ConnectionError("the connection was closed")
        # every call still waiting lost its reply; the next call opens a new connection
        if self._conn is conn:
            self._conn = self._writer = None
        pending, self._pending = self._pending, deque()
        for future in pending:
            if not future.done():
                future.set_exception(error)
        with contextlib.suppress(Exception):
            await conn.disconnect(nowait=True)

    def block_lane(self, key: str) -> AsyncLane:
        """A lane of its own for a blocking command on `key` (so that others do not queue
        behind it); on a cluster, to the primary that serves `key` (lane_cluster.py)."""
        return AsyncLane(self.client)

    async def rerouted(self) -> None:
        """A lane met a cluster redirection; only a cluster lane has a table to refresh."""

    async def aclose(self) -> None:
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
