"""Failover on real servers: a Sentinel group and a Cluster started here (topologies.py).

Each test drains jobs through `steep worker` processes while a primary is SIGKILLed
and a replica takes over; with `min_replicas_ack = 1` no acknowledged job may be lost,
and nobody restarts a worker or the producer by hand. The figures (stall, duplicates)
are printed; benchmarks/failover.py measures the same at full size for docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

from steep import connection
from steep.replicas import NotReplicated
from steep.settings import ConfigError, Settings, configure, reset_settings
from tests import jobs
from tests.conftest import wait_for
from tests.topologies import Cluster, SentinelGroup, drain_through

pytestmark = pytest.mark.slow


@pytest.fixture
def group():
    sentinels = SentinelGroup()
    yield sentinels
    sentinels.stop()
    connection.reset_clients()
    reset_settings()


@pytest.fixture
def cluster():
    nodes = Cluster()
    yield nodes
    nodes.stop()
    connection.reset_clients()
    reset_settings()


def test_a_sentinel_that_does_not_know_the_service_is_one_line(group):
    url = group.url.rsplit("/", 1)[0] + "/payments"
    with pytest.raises(ConfigError) as caught:
        connection.make_client(Settings(redis_url=url))
    assert str(caught.value).startswith("redis_url: the Sentinel group at 127.0.0.1:") and str(
        caught.value
    ).endswith(
        "does not monitor a service named 'payments'; check the name after the hosts "
        "(SENTINEL MASTERS on a sentinel lists them)"
    )


def test_enqueue_through_sentinel_lands_on_the_primary_and_waits_for_a_replica(group):
    configure(redis_url=group.url, min_replicas_ack=1)
    connection.reset_clients()
    job = jobs.add.enqueue(1, 2)
    primary = group.primary()
    assert primary.client.hexists("steep:{default}:jobs", job.id)
    # min_replicas_ack = 1: the enqueue returned after a replica had it, so it is there now
    replicas = [n for n in group.data if n is not primary]
    assert any(r.client.hexists("steep:{default}:jobs", job.id) for r in replicas)
    # replicas that cannot answer (stopped): the enqueue says so instead of returning,
    # from the sync producer and from the asyncio one alike
    for replica in replicas:
        replica.proc.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(NotReplicated, match="only 0 of the 1 replicas"):
            jobs.add.enqueue(3, 4)
        with pytest.raises(NotReplicated, match="only 0 of the 1 replicas"):
            asyncio.run(jobs.async_add.aenqueue(5, 6))
    finally:
        for replica in replicas:
            replica.proc.send_signal(signal.SIGCONT)


def test_sentinel_failover_loses_no_acknowledged_job(group, tmp_path):
    figures = drain_through(
        group.url,
        jobs=1500,
        processes=2,
        replicas_ack=1,
        kill=lambda: group.primary().kill(),
        kill_after=500,
        workdir=tmp_path,
    )
    print("sentinel failover, min_replicas_ack = 1:", figures)
    assert figures["lost"] == 0
    new_primary = wait_for(lambda: group.primary().alive and group.primary(), 30)
    assert new_primary is not group.data[0]


def test_cluster_failover_loses_no_acknowledged_job(cluster, tmp_path):
    primary = cluster.primary_of("steep:{default}:queued")
    figures = drain_through(
        cluster.url,
        jobs=1500,
        processes=2,
        replicas_ack=1,
        kill=lambda: cluster.kill_primary_then_rejoin(primary),
        kill_after=500,
        workdir=tmp_path,
    )
    print("cluster failover, min_replicas_ack = 1:", figures)
    assert figures["lost"] == 0
    assert cluster.primary_of("steep:{default}:queued") is not primary


def _replica_of(cluster, primary):
    for node in cluster.nodes:
        role = node.client.info("replication")
        if role["role"] == "slave" and int(role["master_port"]) == primary.port:
            return node
    raise LookupError(f"no replica follows the node on port {primary.port}")


def _replica_has(node, key, field) -> bool:
    import redis

    with redis.Redis(port=node.port, single_connection_client=True) as direct:
        direct.execute_command("READONLY")  # a cluster replica answers reads only so
        return bool(direct.hexists(key, field))


def test_enqueues_follow_a_failover_their_slot_table_has_not_heard_of(cluster):
    # an operator's CLUSTER FAILOVER swaps a shard's primary and replica; the producer's
    # slot table still names the old primary, which now answers MOVED to a write and
    # "WAIT cannot be used with replica instances" to the WAIT behind it. An enqueue (and
    # a pusher's fence) must follow the redirect, not fail until something else happens
    # to read the table again.
    configure(redis_url=cluster.url, min_replicas_ack=1)
    connection.reset_clients()
    queued = "steep:{default}:queued"
    client = connection.get_client()
    for _ in range(2):
        jobs.add.enqueue(1, 2)  # the client has read the slot table
        old = cluster.primary_of(queued)
        new = _replica_of(cluster, old)
        new.client.execute_command("CLUSTER", "FAILOVER")
        wait_for(lambda new=new: cluster.primary_of(queued) is new, 30)
        cluster.wait_ok()
        assert client.get_node_from_key(queued).port == old.port  # it has not heard
        # the second time, a unique job: a pusher's write, then a fence
        job = jobs.add.enqueue(3, 4) if _ == 0 else jobs.sync_account.enqueue(7)
        assert new.client.hexists("steep:{default}:jobs", job.id)
        # min_replicas_ack = 1: the replica (the old primary) had it when enqueue returned
        assert _replica_has(old, "steep:{default}:jobs", job.id)
        assert client.get_node_from_key(queued).port == new.port


def test_a_queue_slot_migrated_during_a_run_loses_nothing(cluster, tmp_path):
    moved: list[tuple[object, object]] = []

    def migrate() -> None:
        thread = threading.Thread(
            target=lambda: moved.append(cluster.migrate_slot_of("steep:{default}:queued")),
            daemon=True,
        )
        thread.start()

    figures = drain_through(
        cluster.url,
        jobs=1500,
        processes=2,
        replicas_ack=0,
        kill=migrate,
        kill_after=500,
        workdir=tmp_path,
    )
    print("slot migration mid-run:", figures)
    assert moved, "the migration did not finish"
    source, target = moved[0]
    assert cluster.primary_of("steep:{default}:queued") is target is not source
    assert figures["lost"] == 0


def test_a_sentinel_table_and_a_cluster_table_reach_their_servers(group, cluster, tmp_path):
    from steep.settings import load_settings

    sentinels = ", ".join(f'"127.0.0.1:{s.port}"' for s in group.sentinels)
    (tmp_path / "steep.toml").write_text(
        f'[sentinel]\nhosts = [{sentinels}]\nservice = "{group.service}"\ndb = 3\n'
    )
    settings = load_settings(tmp_path, environ={})
    assert settings.redis_url.startswith("redis+sentinel://127.0.0.1:")
    client = connection.make_client(settings)
    client.set("through-the-table", "yes")
    primary = group.master(group.sentinels[0])
    import redis

    direct = redis.Redis(host="127.0.0.1", port=int(primary["port"]), db=3)
    assert direct.get("through-the-table") == b"yes"  # on the primary the sentinels name

    nodes = ", ".join(f'"127.0.0.1:{n.port}"' for n in cluster.nodes[:2])
    (tmp_path / "steep.toml").write_text(f"[cluster]\nhosts = [{nodes}]\n")
    settings = load_settings(tmp_path, environ={})
    client = connection.make_client(settings)
    for i in range(20):  # keys in many slots: the client follows the whole cluster
        client.set(f"k{i}", i)
    assert [int(client.get(f"k{i}")) for i in range(20)] == list(range(20))


def test_unique_priority_and_many_enqueues_and_failures_wait_for_replicas_too(group, tmp_path):
    import os

    from tests.conftest import FAST_CONFIG, ROOT, WorkerCLI

    configure(redis_url=group.url, min_replicas_ack=1)
    connection.reset_clients()
    primary = group.primary()
    replicas = [n for n in group.data if n is not primary]
    unique = jobs.add.options(unique=True).enqueue(7, 7)
    urgent = jobs.add.options(priority=5).enqueue(8, 8)
    for job in (unique, urgent):
        assert any(r.client.hexists("steep:{default}:jobs", job.id) for r in replicas)
    config = tmp_path / "steep.toml"
    config.write_text(FAST_CONFIG + "min_replicas_ack = 1\n")
    env = {**os.environ, "STEEP_REDIS_URL": group.url, "STEEP_CONFIG": str(config)}
    worker = WorkerCLI(
        ["worker", "tests.jobs", "-p", "1", "-c", "2"], {**env, "PYTHONPATH": str(ROOT)}
    )
    try:
        for replica in replicas:
            replica.proc.send_signal(signal.SIGSTOP)
        try:
            # a unique push, a priority push and a many-enqueue are not covered by the
            # enqueue script's own WAIT: a fence behind them says so too
            with pytest.raises(NotReplicated, match="only 0 of the 1 replicas"):
                jobs.add.options(unique=True).enqueue(9, 9)
            with pytest.raises(NotReplicated, match="only 0 of the 1 replicas"):
                jobs.add.options(priority=5).enqueue(10, 10)
            with pytest.raises(NotReplicated, match="only 0 of the 1 replicas"):
                asyncio.run(jobs.add.aenqueue_many([(1, 1), (2, 2)]))
            # the job that fails is enqueued without waiting (its enqueue would say the
            # same); the worker, with min_replicas_ack = 1, records its failure
            configure(redis_url=group.url, min_replicas_ack=0)
            connection.reset_clients()
            failing = jobs.always_fails.options(retries=0).enqueue("replicas")
            wait_for(
                lambda: f"the failure of job {failing.id}" in worker.text,
                timeout=60,
                message="the worker to say the failure's record was not replicated",
            )
        finally:
            for replica in replicas:
                replica.proc.send_signal(signal.SIGCONT)
    finally:
        worker.signal(signal.SIGTERM)
        worker.wait(30)
