"""Real Valkey Clusters and Sentinel groups for the tests, from the pip-installed binary.

`Cluster` starts three primaries and three replicas on free loopback ports (slots
assigned with CLUSTER ADDSLOTSRANGE, nodes joined with CLUSTER MEET, replicas set with
CLUSTER REPLICATE: no valkey-cli needed); `SentinelGroup` starts a primary, two replicas
and three sentinels (`valkey-server --sentinel`). Both live in a temporary directory and
are torn down (SIGKILL, then the directory removed) by `stop()`.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from steep.server import valkey_binary

SLOTS = 16384


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if value := predicate():
                return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Node:
    """One valkey-server process (a data node or a sentinel)."""

    def __init__(self, root: Path, port: int, args: list[str], name: str) -> None:
        self.port = port
        self.dir = root / name
        self.dir.mkdir()
        self.log = self.dir / "log"
        self.args = args
        self.proc = self._start()
        self.client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def _start(self) -> subprocess.Popen[bytes]:
        where = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        return subprocess.Popen(
            [str(valkey_binary()), *self.args, *where, "--logfile", str(self.log), "--save", ""],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def restart(self) -> None:
        """Start it again on its own port and files (a cluster node rejoins from its
        nodes.conf, as a replica of whoever took its slots)."""
        self.kill()
        self.proc = self._start()
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        self.wait_up()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.client.close()

    def wait_up(self, timeout: float = 15) -> None:
        def answers() -> bool:
            if not self.alive:
                raise RuntimeError(f"valkey-server on {self.port} exited: {self.log_tail()}")
            return bool(self.client.ping())

        _until(answers, timeout, f"valkey-server on port {self.port}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "".join(self.log.read_text().splitlines(keepends=True)[-20:])
        return ""


class Cluster:
    """Three primaries (slots split evenly) and a replica for each."""

    def __init__(self, primaries: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="steep-cluster-", dir="/tmp"))
        ports = _free_ports(4 * primaries)
        self.nodes: list[Node] = []
        try:
            for i in range(2 * primaries):
                port, bus = ports[2 * i], ports[2 * i + 1]
                args = ["--cluster-enabled", "yes", "--cluster-port", str(bus)]
                args += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1500"]
                args += ["--appendonly", "yes", "--appendfsync", "everysec"]
                args += ["--repl-diskless-sync-delay", "0"]
                self.nodes.append(Node(self.root, port, args, f"node{i}"))
            self._form(primaries, ports)
        except BaseException:
            self.stop()
            raise

    def _form(self, primaries: int, ports: list[int]) -> None:
        for node in self.nodes:
            node.wait_up()
        first = self.nodes[0]
        for i, node in enumerate(self.nodes[1:], start=1):
            first.client.execute_command(
                "CLUSTER", "MEET", "127.0.0.1", node.port, ports[2 * i + 1]
            )
        share = SLOTS // primaries
        for i in range(primaries):
            low, high = i * share, SLOTS - 1 if i == primaries - 1 else (i + 1) * share - 1
            self.nodes[i].client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        _until(
            lambda: all(len(self._known(n)) == len(self.nodes) for n in self.nodes),
            30,
            "every node to know every other",
        )
        for i in range(primaries):
            primary_id = self.node_id(self.nodes[i])
            self.nodes[primaries + i].client.execute_command("CLUSTER", "REPLICATE", primary_id)
        self.wait_ok()

    @staticmethod
    def _known(node: Node) -> list[str]:
        text = node.client.execute_command("CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else text
        return [line for line in text.splitlines() if line.strip()]

    @staticmethod
    def node_id(node: Node) -> str:
        value = node.client.execute_command("CLUSTER", "MYID")
        return value.decode() if isinstance(value, bytes) else str(value)

    def info(self, node: Node) -> dict[str, str]:
        text = node.client.execute_command("CLUSTER", "INFO")
        text = text.decode() if isinstance(text, bytes) else text
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says the cluster is ok and every replica is in sync."""

        def ok() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                if self.info(node).get("cluster_state") != "ok":
                    return False
                role = node.client.info("replication")
                if role["role"] == "slave" and role.get("master_link_status") != "up":
                    return False
            return True

        _until(ok, timeout, "the cluster to be ok")

    def kill_primary_then_rejoin(self, node: Node) -> threading.Thread:
        """SIGKILL the primary `node` now; in the background, once its replica has taken
        over, start it again (it rejoins as that replica's replica, so the shard has a
        replica again for min_replicas_ack). Returns the background thread."""
        node.kill()

        def rejoin() -> None:
            _until(lambda: self._promoted(node), 60, "a replica to take over")
            node.restart()

        thread = threading.Thread(target=rejoin, daemon=True)
        thread.start()
        return thread

    def migrate_slot_of(self, key: str, batch: int = 20) -> tuple[Node, Node]:
        """Move the slot of `key` to another primary the way an operator's reshard does
        (SETSLOT IMPORTING/MIGRATING, MIGRATE a few keys at a time, SETSLOT NODE), while
        clients keep using it. Returns (source, target)."""
        source = self.primary_of(key)
        target = next(n for n in self.nodes[:3] if n is not source and n.alive)
        slot = int(source.client.execute_command("CLUSTER", "KEYSLOT", key))
        source_id, target_id = self.node_id(source), self.node_id(target)
        target.client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := source.client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            source.client.execute_command(
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
            )
            time.sleep(0.01)  # let clients in between: they meet ASK and TRYAGAIN
        for node in (target, source, *[n for n in self.nodes if n.alive]):
            with contextlib.suppress(redis.ResponseError):  # a replica may refuse: gossip
                node.client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return source, target

    def _promoted(self, dead: Node) -> bool:
        """Every live node is ok and none names `dead` as the owner of a slot."""
        live = [n for n in self.nodes if n.alive]
        if not all(self.info(n).get("cluster_state") == "ok" for n in live):
            return False
        owners = {int(r[2][1]) for n in live for r in n.client.execute_command("CLUSTER", "SLOTS")}
        return dead.port not in owners

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def primary_of(self, key: str) -> Node:
        slot = self.nodes[0].client.execute_command("CLUSTER", "KEYSLOT", key)
        for node in self.nodes:
            if not node.alive:
                continue
            for low, high, primary, *_ in node.client.execute_command("CLUSTER", "SLOTS"):
                if low <= slot <= high:
                    return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(f"no node serves the slot of {key!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class SentinelGroup:
    """A primary, two replicas and three sentinels watching it as `service`."""

    def __init__(self, service: str = "steep") -> None:
        self.service = service
        self.root = Path(tempfile.mkdtemp(prefix="steep-sentinel-", dir="/tmp"))
        ports = _free_ports(6)
        self.data: list[Node] = []
        self.sentinels: list[Node] = []
        try:
            # no wait for more replicas before the first full sync (5 s by default)
            durable = ["--appendonly", "yes", "--appendfsync", "everysec"]
            durable += ["--repl-diskless-sync-delay", "0"]
            self.data.append(Node(self.root, ports[0], durable, "primary"))
            for i in (1, 2):
                replica = [*durable, "--replicaof", "127.0.0.1", str(ports[0])]
                self.data.append(Node(self.root, ports[i], replica, f"replica{i}"))
            for node in self.data:
                node.wait_up()
            for i in (3, 4, 5):
                conf = self.root / f"sentinel{i}.conf"
                conf.write_text(
                    f"sentinel monitor {service} 127.0.0.1 {ports[0]} 2\n"
                    f"sentinel down-after-milliseconds {service} 1000\n"
                    f"sentinel failover-timeout {service} 5000\n"
                    f"sentinel parallel-syncs {service} 2\n"
                )
                node = Node(self.root, ports[i], [str(conf), "--sentinel"], f"sentinel{i}")
                self.sentinels.append(node)
            for node in self.sentinels:
                node.wait_up()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def master(self, sentinel: Node) -> dict[str, Any]:
        return dict(sentinel.client.sentinel_master(self.service))

    def wait_ready(self, replicas: int = 2, timeout: float = 30) -> None:
        """Until every live sentinel sees the primary, `replicas` replicas and the others."""
        live = [s for s in self.sentinels if s.alive]

        def ready() -> bool:
            for sentinel in live:
                info = self.master(sentinel)
                if info["is_sdown"] or info["is_odown"]:
                    return False
                if int(info["num-slaves"]) < replicas:
                    return False
                if int(info["num-other-sentinels"]) < len(live) - 1:
                    return False
            return True

        _until(ready, timeout, "the sentinels to see the whole group")

        def synced() -> bool:
            replicas = [n.client.info("replication") for n in self.data if n.alive]
            links = [r.get("master_link_status") for r in replicas if r["role"] == "slave"]
            return len(links) >= replicas_wanted and all(link == "up" for link in links)

        replicas_wanted = replicas
        _until(synced, timeout, "the replicas to finish their first sync")

    def primary(self) -> Node:
        """The data node the sentinels name as primary now."""
        _, port = self.sentinels[0].client.execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
        )
        return next(n for n in self.data if n.port == int(port))

    @property
    def url(self) -> str:
        where = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{where}/{self.service}"

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data]:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def drain_through(
    url: str,
    jobs: int,
    processes: int,
    replicas_ack: int,
    kill: Callable[[], None],
    kill_after: int,
    workdir: Path,
    timeout: float = 120.0,
) -> dict[str, float]:
    """Enqueue `jobs` (tests.jobs.record) one by one while `steep worker` processes drain
    them; call `kill` once `kill_after` are enqueued. Returns what was measured: the
    longest stall of the drain after the kill (s), jobs lost, duplicate runs, and how
    many enqueues had to be repeated (their first try failed during the outage)."""
    import os
    import sys

    from steep import connection
    from steep.settings import configure
    from tests import jobs as test_jobs
    from tests.conftest import FAST_CONFIG, ROOT, WorkerCLI

    config = workdir / "steep-failover.toml"
    config.write_text(FAST_CONFIG + f"min_replicas_ack = {replicas_ack}\n")
    env = {
        **os.environ,
        "STEEP_REDIS_URL": url,
        "STEEP_CONFIG": str(config),
        "PYTHONPATH": str(ROOT),
    }
    configure(redis_url=url, min_replicas_ack=replicas_ack)
    connection.reset_clients()
    worker = WorkerCLI(["worker", "tests.jobs", "-p", str(processes), "-c", "10"], env)
    client = connection.make_client()
    progress: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            with contextlib.suppress(Exception):
                progress.append((time.monotonic(), int(client.get("test:runs:fo") or 0)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    killed_at = 0.0
    repeated = 0
    try:
        for i in range(jobs):
            if i == kill_after:
                killed_at = time.monotonic()
                kill()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    test_jobs.record.enqueue("fo", i)
                    break
                except Exception:  # the outage: the same call again, as a producer would
                    repeated += 1
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        # the drain is over once every job ran, or (jobs were lost) nothing has run for
        # longer than any recovery takes (the stray check, a reaped worker: seconds)
        deadline = time.monotonic() + timeout
        seen, since = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < 20:
            with contextlib.suppress(Exception):
                now_seen = int(client.scard("test:seen:fo"))
                if now_seen >= jobs:
                    break
                if now_seen != seen:
                    seen, since = now_seen, time.monotonic()
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates (jobs returned by the stray check) are counted
        seen = int(client.scard("test:seen:fo"))
        runs = int(client.get("test:runs:fo") or 0)
    finally:
        stop.set()
        watcher.join(5)
        worker.kill_tree()
        client.close()
        connection.reset_clients()
    stall = 0.0
    after = [(t, n) for t, n in progress if t >= killed_at]
    last_change = killed_at
    for (_, n0), (t1, n1) in itertools.pairwise(after):
        if n1 != n0:
            stall = max(stall, t1 - last_change)
            last_change = t1
    print(worker.text[-2000:] if seen < jobs else "", file=sys.stderr)
    return {
        "stall_s": round(stall, 2),
        "lost": jobs - seen,
        "duplicates": runs - seen,
        "repeated_enqueues": repeated,
    }
