"""Redis clients (sync and async) and the registry of steep's Lua scripts.

One sync client per process and one async client per event loop, created on
first use from the current settings: `STEEP_REDIS_URL` when set, otherwise the
embedded Valkey server (started on first use, see steep.server). Clients retry
connection errors with backoff, so a restarting server is ridden out.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import weakref
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    NoScriptError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from steep.keys import Keys
from steep.server import connection_kwargs
from steep.settings import ConfigError, Settings, get_settings
from steep.topology import (
    Topology,
    TopologyError,
    check_topology,
    make_async,
    make_sync,
    parse_topology,
)

KeyArgs = Sequence[str]
ArgvArgs = Sequence[str | bytes | int | float]


class Script:
    """One Lua script from `steep/scripts/`, run by its SHA with a load on first miss.

    redis-py's own Script object checks `SCRIPT EXISTS` before every pipeline,
    an extra round trip on the hot path; here a NOSCRIPT reply (a fresh or
    restarted server) loads the script and repeats the call once.
    """

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: KeyArgs, args: ArgvArgs = ()) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    async def run_async(
        self, client: redis.asyncio.Redis, keys: KeyArgs, args: ArgvArgs = ()
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]


def _load_scripts() -> dict[str, Script]:
    folder = resources.files("steep") / "scripts"
    scripts = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".lua"):
            name = entry.name.removesuffix(".lua")
            scripts[name] = Script(name, entry.read_text(encoding="utf-8"))
    return scripts


class Scripts:
    """The named atomic operations; each touches the keys of one queue only."""

    def __init__(self) -> None:
        loaded = _load_scripts()
        self.enqueue = loaded["enqueue"]
        self.claim = loaded["claim"]
        self.claim_moved = loaded["claim_moved"]
        self.ack = loaded["ack"]
        self.fail = loaded["fail"]
        self.promote = loaded["promote"]
        self.requeue = loaded["requeue"]
        # a hook's verdict (steep.hooks): not now, or never
        self.defer = loaded["defer"]
        self.discard = loaded["discard"]
        # operator actions (steep.ops)
        self.edit = loaded["edit"]
        self.delete = loaded["delete"]
        self.take = loaded["take"]
        self.run_now = loaded["run_now"]
        self.retry_dead = loaded["retry_dead"]
        self.clear = loaded["clear"]
        self.all = loaded

    def named(self, name: str) -> Script:
        """A feature's script, by its file name (each named after its feature)."""
        try:
            return self.all[name]
        except KeyError:
            raise KeyError(f"no Lua script named {name!r} in steep/scripts") from None


SCRIPTS = Scripts()

# What a loop rides out by retrying: a lost connection, and on a cluster a failover or a
# slot migration in progress (redis-py's cluster client has retried those already).
RETRYABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    ClusterDownError,
    TryAgainError,
    ClusterError,
    SlotNotCoveredError,
)


def _client_options(settings: Settings) -> dict[str, Any]:
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 30,
        "client_name": f"steep-{os.getpid()}",
    }


def _topology(settings: Settings) -> Topology | None:
    """The Sentinel group or Cluster of the settings (checked once per URL and process:
    a wrong service name or uncovered slots is a ConfigError naming redis_url)."""
    if not settings.redis_url or (topology := parse_topology(settings.redis_url)) is None:
        return None
    if settings.redis_url not in _checked:
        try:
            check_topology(topology)
        except TopologyError as exc:
            raise ConfigError(f"redis_url: {exc}") from None
        _checked.add(settings.redis_url)
    return topology


_checked: set[str] = set()


def make_client(settings: Settings | None = None) -> redis.Redis:
    """A new sync client (the caller owns and closes it). For a Cluster it is a
    redis.cluster.RedisCluster, which has the same commands (typed as redis.Redis here
    so that callers need no cast: steep uses only what both have)."""
    settings = settings or get_settings()
    options = _client_options(settings)
    if (topology := _topology(settings)) is not None:
        return make_sync(topology, options)  # type: ignore[no-any-return]
    target = connection_kwargs(settings)
    if "url" in target:
        return redis.Redis.from_url(target["url"], **options)
    return redis.Redis(**target, **options)


def make_async_client(settings: Settings | None = None) -> redis.asyncio.Redis:
    """A new async client (the caller owns and closes it; see make_client)."""
    settings = settings or get_settings()
    options = _client_options(settings)
    if (topology := _topology(settings)) is not None:
        return make_async(topology, options)  # type: ignore[no-any-return]
    target = connection_kwargs(settings)
    if "url" in target:
        return redis.asyncio.Redis.from_url(target["url"], **options)
    return redis.asyncio.Redis(**target, **options)


_lock = threading.Lock()
_sync_client: tuple[int, redis.Redis] | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary()
)


def get_client() -> redis.Redis:
    """The process-wide sync client (recreated in a forked child)."""
    global _sync_client
    current = _sync_client
    if current is not None and current[0] == os.getpid():
        return current[1]
    with _lock:
        if _sync_client is None or _sync_client[0] != os.getpid():
            global _replicas
            _replicas = get_settings().min_replicas_ack
            _sync_client = (os.getpid(), make_client())
        return _sync_client[1]


# min_replicas_ack of the settings the process-wide client was made from (steep.replicas)
_replicas = 0


def replicas_to_wait() -> int:
    """How many replicas an enqueue through get_client() waits for (min_replicas_ack)."""
    return _replicas


def get_async_client() -> redis.asyncio.Redis:
    """The async client of the running event loop (async clients are bound to one loop)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = make_async_client()
        _async_clients[loop] = client
    return client


async def close_async_client() -> None:
    """Close the running loop's cached async client (before the loop ends)."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def get_keys() -> Keys:
    return Keys(get_settings().namespace)


def reset_clients() -> None:
    """Close and forget the cached clients (after the settings change, and in tests)."""
    global _sync_client
    from steep.lane import close_lanes

    close_lanes()
    with _lock:
        if _sync_client is not None:
            _sync_client[1].close()
            _sync_client = None
    _async_clients.clear()
