"""Lean lanes on a Redis Cluster: one lane per primary, chosen by the slot of the keys.

Every steep script's keys share one hash tag (keys.py), so the slot of the first key is
the slot of the call. A call goes to the lane of the primary that the redis-py cluster
client's slot table names for it. The lanes never handle a redirection themselves: a
`MOVED` or `ASK` reply (the slot moved, or is moving), `TRYAGAIN` (its keys are split
mid-migration), `CLUSTERDOWN` (a failover in progress) or a primary that cannot be
reached means the script did not run, so the call is handed to redis-py's cluster
client, which follows the redirection, refreshes its slot table and retries; the next
call finds the new owner in that table. A reply lost after the request went out is
treated as on one server (lane.py): the sync lane repeats only idempotent scripts, the
async lane raises ConnectionError for the worker's own recovery.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio
import redis.asyncio.cluster
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

from steep.lane import AsyncLane

if TYPE_CHECKING:
    from steep.connection import Script

# replies that say the script did not run here, and redis-py knows where it should
REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError)


def is_cluster(client: Any) -> bool:
    return isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


def async_lane(client: redis.asyncio.Redis) -> AsyncLane:
    """The worker's lane for `client`: routed by slot when it is a cluster client."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return ClusterAsyncLane(client)
    return AsyncLane(client)


class ClusterAsyncLane(AsyncLane):
    """An AsyncLane per primary of a cluster; `run` picks one by the slot of the keys."""

    def __init__(self, client: redis.asyncio.cluster.RedisCluster) -> None:
        super().__init__(client)  # type: ignore[arg-type]
        self.cluster = client
        self._nodes: dict[str, redis.asyncio.Redis] = {}
        self._lanes: dict[str, AsyncLane] = {}

    def _node(self, key: str) -> tuple[str, redis.asyncio.Redis]:
        """The name and a plain client of the primary that serves `key`'s slot."""
        node = self.cluster.nodes_manager.get_node_from_slot(key_slot(key.encode()))
        found = self._nodes.get(node.name)
        if found is None:
            pool = redis.asyncio.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs
            )
            # from_pool: the client owns the pool, so aclose() closes its connections
            found = self._nodes[node.name] = redis.asyncio.Redis.from_pool(pool)
        return node.name, found

    async def run(
        self, script: Script, keys: Sequence[str], args: Sequence[Any] = (), wait: int = 0
    ) -> Any:
        try:
            name, node = self._node(keys[0])
        except (redis.RedisError, LookupError, IndexError):
            return await script.run_async(self.client, keys, args)
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = AsyncLane(node)
        try:
            usable = await lane.open()
        except ConnectionError:
            usable = False  # that primary is gone: redis-py finds its successor
        if usable:
            try:
                return await lane.run(script, keys, args, wait)
            except REDIRECTED:
                pass  # the script did not run there
        # (a call redirected here is not waited for: WAIT needs the connection that wrote,
        # and the redirection is followed on one of redis-py's; docs/scaling.md)
        return await script.run_async(self.client, keys, args)

    def block_lane(self, key: str) -> AsyncLane:
        """A lane of its own to the primary of `key` (for a blocking command on it)."""
        return AsyncLane(self._node(key)[1])

    async def rerouted(self) -> None:
        """A lane met a redirection: refresh the slot table before the next call."""
        with contextlib.suppress(redis.RedisError, OSError):
            await self.cluster.nodes_manager.initialize()

    async def open(self) -> bool:
        return True

    async def aclose(self) -> None:
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            await lane.aclose()
        nodes, self._nodes = self._nodes, {}
        for node in nodes.values():
            with contextlib.suppress(Exception):
                await node.aclose()
