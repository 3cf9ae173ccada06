"""`min_replicas_ack`: a write returns only once that many replicas have it (WAIT).

Redis replicates asynchronously: a primary that dies right after answering may take the
last writes with it, and the replica promoted in its place never saw them. With
`min_replicas_ack = N`, steep sends `WAIT N timeout` on the same connection right behind
an enqueue or an acknowledgement, so the call returns only after N replicas confirmed
the write (WAIT counts replicas that reached this connection's latest write, and every
earlier write of the primary with it). The price is a round trip to the replicas on
every enqueue and every batch of acknowledgements; docs/scaling.md has the figures.

An enqueue whose replicas do not confirm in time raises NotReplicated (the job is on
the primary and runs unless that primary fails before its replicas catch up); an
acknowledgement that is not confirmed is logged (if it is lost, the job runs again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.exceptions import MovedError, NoScriptError, ReadOnlyError

from steep.connection import Script
from steep.errors import SteepError

# How long a write waits for its replicas before NotReplicated (a replica that lags by
# more than this is the operator's problem to see, not a reason to hang producers).
from steep.lane import WAIT_TIMEOUT_MS

T = TypeVar("T")


class NotReplicated(SteepError):
    """Fewer replicas than `min_replicas_ack` confirmed a write within WAIT_TIMEOUT_MS."""

    def __init__(self, what: str, confirmed: int, wanted: int) -> None:
        super().__init__(
            f"{what}: only {confirmed} of the {wanted} replicas that min_replicas_ack asks "
            f"for confirmed it within {WAIT_TIMEOUT_MS / 1000:g} s; it is on the primary, "
            "but a failover before the replicas catch up would lose it (check the replicas' "
            "link to the primary: INFO replication)"
        )
        self.confirmed = confirmed
        self.wanted = wanted


def run_replicated(
    script: Script, client: Any, keys: Sequence[str], args: Sequence[Any], replicas: int
) -> tuple[Any, int]:
    """Run `script`, then WAIT for `replicas` on the same connection: (reply, confirmed).

    On a cluster the pipeline goes to the primary of the keys' slot (its plain client),
    since WAIT only means something on the connection that wrote."""
    if not hasattr(client, "get_node_from_key"):
        return _run_and_wait(script, client, keys, args, replicas)
    return _on_cluster_primary(
        client, keys[0], lambda target: _run_and_wait(script, target, keys, args, replicas)
    )


# How often a cluster write follows a redirect (a failover, a manual CLUSTER FAILOVER, a
# resharded slot) to the owner that the refreshed slot table names before it gives up.
REDIRECTS = 3


def _on_cluster_primary(client: Any, key: str, call: Callable[[Any], T]) -> T:
    """`call(primary)` on the plain client of the primary that owns `key`'s slot.

    A node that is no longer that primary (a failover demoted it, or the slot moved)
    refuses the write: MOVED to the script, and "WAIT cannot be used with replica
    instances" to the WAIT behind it. Nothing was written, so the slot table is read
    again and the call goes to the new owner, as the cluster client does for its own
    commands. A node that cannot be reached may have taken the write: the table is read
    again for the caller's next try, and the error is the caller's."""
    for attempt in range(1, REDIRECTS + 1):
        target = client.get_node_from_key(key).redis_connection
        try:
            return call(target)
        except (redis.ConnectionError, redis.TimeoutError):
            # that primary is gone: read the slot table again (a replica may have taken
            # over), so that the caller's next try goes to the new primary
            _refresh(client)
            raise
        except redis.ResponseError as exc:
            _refresh(client)
            if attempt == REDIRECTS or not _not_owner(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _not_owner(error: redis.ResponseError) -> bool:
    """The node refused a write of a slot it does not serve, and so wrote nothing."""
    if isinstance(error, MovedError | ReadOnlyError):  # redis-py parses both replies
        return True
    return str(error).startswith("WAIT cannot be used with replica")


def _refresh(client: Any) -> None:
    with contextlib.suppress(redis.RedisError, OSError):
        client.nodes_manager.initialize()


def _run_and_wait(
    script: Script,
    target: Any,
    keys: Sequence[str],
    args: Sequence[Any],
    replicas: int,
) -> tuple[Any, int]:
    """The script and its WAIT on one pooled connection, sent together and never
    repeated: WAIT counts the replicas that reached *this connection's* last write, so a
    retry on another connection (after a timeout) whose script wrote nothing new (the
    job was there already) would be confirmed at once, whatever the replicas hold."""
    pool = target.connection_pool
    conn = pool.get_connection()
    try:
        wait_ms = _wait_ms(conn)
        for attempt in (1, 2):
            conn.send_packed_command(
                conn.pack_commands(
                    [
                        ("EVALSHA", script.sha, len(keys), *keys, *args),
                        ("WAIT", replicas, wait_ms),
                    ]
                )
            )
            # both replies are read, errors too, so that the connection stays in step
            reply, confirmed = _read(conn), _read(conn)
            if isinstance(reply, NoScriptError) and attempt == 1:
                conn.send_command("SCRIPT", "LOAD", script.source)
                conn.read_response()
                continue
            if isinstance(reply, Exception):
                raise reply  # on a cluster, MOVED or ASK: nothing ran (_on_cluster_primary)
            if isinstance(confirmed, Exception):
                raise confirmed
            return reply, int(confirmed)
    except BaseException:
        conn.disconnect()  # a reply may be left unread: never reuse this connection
        raise
    finally:
        pool.release(conn)
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_ms(conn: Any) -> int:
    """WAIT's timeout on `conn`: it must answer before the socket times out, or its
    answer is lost."""
    timeout = conn.socket_timeout
    return WAIT_TIMEOUT_MS if not timeout else min(WAIT_TIMEOUT_MS, int(timeout * 800))


def _read(conn: Any) -> Any:
    """The next reply on `conn`; an error reply is returned, not raised."""
    try:
        return conn.read_response()
    except redis.ResponseError as exc:
        return exc


def fence(client: Any, key: str, replicas: int) -> int:
    """After writes made on other connections (a unique or priority push, a retry's
    record), learn that `replicas` replicas have them: a write of `key` (in the slot of
    the queue written) and a WAIT behind it on one connection to that primary. The
    replicas confirm offsets of the primary's one replication stream, so a confirmed
    fence covers every write the primary answered before it. Returns the replicas that
    confirmed."""
    if not hasattr(client, "get_node_from_key"):
        return _fence_on(client, key, replicas)
    return _on_cluster_primary(client, key, lambda target: _fence_on(target, key, replicas))


def _fence_on(target: Any, key: str, replicas: int) -> int:
    pool = target.connection_pool
    conn = pool.get_connection()
    try:
        wait_ms = _wait_ms(conn)
        conn.send_packed_command(
            conn.pack_commands([("SET", key, "1", "PX", 60000), ("WAIT", replicas, wait_ms)])
        )
        written, confirmed = _read(conn), _read(conn)
        if isinstance(written, Exception):
            raise written
        if isinstance(confirmed, Exception):
            raise confirmed
        return int(confirmed)
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
