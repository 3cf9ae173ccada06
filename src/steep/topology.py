"""Where Redis is: one server, a Sentinel group, or a Cluster, read from `redis_url`.

    redis://host:6379/0                                  one server (or rediss://, unix://)
    redis+sentinel://[:password@]h1:26379,h2:26379/mymaster[/db]   a Sentinel group
    redis+cluster://[:password@]h1:7000,h2:7001          a Cluster (any nodes of it)

`rediss+sentinel://` and `rediss+cluster://` use TLS. A Sentinel URL's password is the
data servers' password; `?sentinel_password=` sets the sentinels' own. Clients for each
kind are made here; `check_topology` asks the servers once, at start, whether the
Sentinel knows the service and the cluster covers every slot, so a typo is one clear
line naming `redis_url` instead of a stream of retries. See docs/scaling.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class TopologyError(ValueError):
    """A Sentinel or Cluster URL that cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Topology:
    """A parsed Sentinel or Cluster URL (one server's URLs are left to redis-py)."""

    kind: str  # "sentinel" or "cluster"
    hosts: tuple[tuple[str, int], ...]
    service: str = ""  # sentinel: the name the sentinels monitor the primary under
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def __repr__(self) -> str:
        # never the passwords: a Topology may end up in a log line or a traceback
        where = ",".join(f"{host}:{port}" for host, port in self.hosts)
        return f"Topology({self.kind} {where}{'/' + self.service if self.service else ''})"

    @property
    def where(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.hosts)


def _hosts(netloc: str, default_port: int, what: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep:
            host, port = port, ""
        host = host.strip("[]")
        if not host:
            raise TopologyError(f"{what}: an empty host in {netloc!r}")
        if port and not port.isdigit():
            raise TopologyError(f"{what}: the port of {item.strip()!r} is not a number")
        hosts.append((host, int(port) if port else default_port))
    return tuple(hosts)


def parse_topology(url: str) -> Topology | None:
    """The Sentinel or Cluster a URL names, None for a one-server URL; TopologyError
    (naming what is wrong, never the password) for a bad one."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*SENTINEL_SCHEMES, *CLUSTER_SCHEMES):
        return None
    kind = "sentinel" if scheme in SENTINEL_SCHEMES else "cluster"
    # urlsplit refuses several host:port pairs; split the user info off by hand
    authority, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in authority:
        authority, _, query = authority.partition("?")
    userinfo, at, netloc = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    what = f"a {kind} URL"
    if not netloc:
        raise TopologyError(f"{what} needs at least one host:port, as in {scheme}://host:port")
    hosts = _hosts(netloc, 26379 if kind == "sentinel" else 6379, what)
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    parts = [part for part in path.split("/") if part]
    service, db = "", 0
    if kind == "sentinel":
        if not parts:
            raise TopologyError(
                f"{what} needs the service name after the hosts, as in "
                f"{scheme}://host:26379/mymaster (SENTINEL MASTERS lists them)"
            )
        service = parts.pop(0)
    if parts:
        if kind == "cluster" or len(parts) > 1 or not parts[0].isdigit():
            allowed = "/service/db" if kind == "sentinel" else "nothing (a cluster has only db 0)"
            raise TopologyError(f"{what} takes {allowed} after the hosts, got /{'/'.join(parts)}")
        db = int(parts[0])
    return Topology(
        kind,
        hosts,
        service,
        db,
        username,
        password,
        options.get("sentinel_password"),
        scheme.startswith("rediss"),
    )


def _auth(topology: Topology) -> dict[str, Any]:
    auth: dict[str, Any] = {}
    if topology.username:
        auth["username"] = topology.username
    if topology.password:
        auth["password"] = topology.password
    if topology.tls:
        auth["ssl"] = True
    return auth


def _sentinel_kwargs(topology: Topology) -> dict[str, Any]:
    sentinel: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    if topology.sentinel_password:
        sentinel["password"] = topology.sentinel_password
    if topology.tls:
        sentinel["ssl"] = True
    return sentinel


def _cluster_options(options: dict[str, Any]) -> dict[str, Any]:
    # the cluster client retries (and refreshes its slot table) on its own terms
    kept = {key: value for key, value in options.items() if key != "retry_on_error"}
    # On every 5th MOVED, redis-py (8.1) closes all of its connections to rebuild its
    # slot table, under the feet of the commands still using them: concurrent callers
    # then fail with AttributeError ('NoneType' object has no attribute 'writelines').
    # A MOVED reply carries the slot's new owner, so patching the table from it (what
    # redis-py does on the other MOVED replies) is enough; failovers still rebuild it.
    kept["reinitialize_steps"] = 1 << 30
    return kept


def make_sync(topology: Topology, options: dict[str, Any]) -> Any:
    """A redis-py client of the Sentinel's current primary, or of the Cluster."""
    if topology.kind == "sentinel":
        group = redis.sentinel.Sentinel(
            list(topology.hosts), sentinel_kwargs=_sentinel_kwargs(topology)
        )
        return group.master_for(topology.service, db=topology.db, **_auth(topology), **options)
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in topology.hosts]
    return redis.cluster.RedisCluster(
        startup_nodes=nodes, **_auth(topology), **_cluster_options(options)
    )


def make_async(topology: Topology, options: dict[str, Any]) -> Any:
    """The asyncio twin of `make_sync`."""
    if topology.kind == "sentinel":
        group = redis.asyncio.sentinel.Sentinel(
            list(topology.hosts), sentinel_kwargs=_sentinel_kwargs(topology)
        )
        return group.master_for(topology.service, db=topology.db, **_auth(topology), **options)
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in topology.hosts]
    kept = _cluster_options(options)
    kept.pop("health_check_interval", None)
    return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **_auth(topology), **kept)


def check_topology(topology: Topology) -> None:
    """Ask the servers once whether the URL can work: the Sentinel group knows the
    service, the cluster covers every slot. TopologyError when not; unreachable
    servers are left to the clients' retries (they may be starting)."""
    if topology.kind == "sentinel":
        group = redis.sentinel.Sentinel(
            list(topology.hosts), sentinel_kwargs=_sentinel_kwargs(topology)
        )
        try:
            known = _sentinels_know(group, topology.service)
            if known is False:
                raise TopologyError(
                    f"the Sentinel group at {topology.where} does not monitor a service "
                    f"named {topology.service!r}; check the name after the hosts "
                    "(SENTINEL MASTERS on a sentinel lists them)"
                )
        finally:
            for sentinel in group.sentinels:
                sentinel.close()
        return
    covered = _slots_covered(topology)
    if covered is not None and covered < 16384:
        raise TopologyError(
            f"the cluster at {topology.where} has only {covered} of its 16384 slots "
            "assigned; assign the rest (CLUSTER ADDSLOTSRANGE)"
        )


def _sentinels_know(group: redis.sentinel.Sentinel, service: str) -> bool | None:
    """Whether the first sentinel that answers monitors `service` (None: none answers).
    A primary that is down right now (a failover in progress) is still known: the
    clients' retries find its successor."""
    for sentinel in group.sentinels:
        try:
            masters = sentinel.sentinel_masters()
        except (redis.RedisError, OSError):
            continue
        return service in masters
    return None


def _slots_covered(topology: Topology) -> int | None:
    """How many slots the first answering node says are assigned (None: none answered).
    Assigned, not `ok`: during a failover a primary's slots are failing but still its,
    and a worker started then must wait for the promotion, not refuse to start."""
    for host, port in topology.hosts:
        node = redis.Redis(host=host, port=port, socket_timeout=2.0, **_auth(topology))
        try:
            info = node.execute_command("CLUSTER", "INFO")
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            continue
        except redis.ResponseError as exc:
            raise TopologyError(
                f"{host}:{port} is not a cluster node ({exc}); use redis:// for one server"
            ) from None
        finally:
            node.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.splitlines():
            if line.startswith("cluster_slots_assigned:"):
                return int(line.split(":", 1)[1])
        if isinstance(info, dict):
            return int(info.get("cluster_slots_assigned", 0))
    return None


__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "Topology",
    "TopologyError",
    "check_topology",
    "make_async",
    "make_sync",
    "parse_topology",
]
