"""Sentinel and Cluster URLs (steep/topology.py): what they parse to, and the one clear
line a wrong one gets, naming `redis_url`, before anything is sent or lost.

The live checks run against real servers started here from the pip-installed binary: a
one-node cluster that serves no slots, and a plain server named by a cluster URL.
"""

from __future__ import annotations

import pytest

from steep import connection
from steep.settings import ConfigError, Settings
from steep.topology import Topology, TopologyError, parse_topology
from tests.topologies import Node, _free_ports


def test_a_sentinel_url_names_its_hosts_service_db_and_passwords():
    topology = parse_topology(
        "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/orders/2"
        "?sentinel_password=watch"
    )
    assert topology == Topology(
        "sentinel",
        (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)),
        "orders",
        2,
        None,
        "s3cret",
        "watch",
        False,
    )
    assert "s3cret" not in repr(topology) and "watch" not in repr(topology)


def test_a_cluster_url_names_its_nodes_and_tls():
    topology = parse_topology("rediss+cluster://app:pw@node1:7000,node2:7001")
    assert topology is not None
    assert (topology.kind, topology.hosts, topology.tls) == (
        "cluster",
        (("node1", 7000), ("node2", 7001)),
        True,
    )
    assert (topology.username, topology.password) == ("app", "pw")


def test_one_server_urls_are_left_to_redis_py():
    assert parse_topology("redis://localhost:6379/0") is None
    assert parse_topology("unix:///tmp/valkey.sock") is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h1:26379,h2:26379", "needs the service name after the hosts"),
        ("redis+sentinel://h1:26379/mymaster/x", "takes /service/db after the hosts"),
        ("redis+cluster://h1:7000/3", "a cluster has only db 0"),
        ("redis+cluster://h1:70x0", "the port of 'h1:70x0' is not a number"),
        ("redis+cluster://", "needs at least one host:port"),
        ("http://h1:6379", "a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"),
    ],
)
def test_a_bad_url_is_one_line_naming_the_setting(url, says):
    with pytest.raises(ConfigError) as caught:
        Settings(redis_url=url)
    message = str(caught.value)
    assert message.startswith("Settings: 'redis_url' must be")
    assert says in message and "\n" not in message


def test_the_password_of_a_bad_url_is_never_shown():
    with pytest.raises(ConfigError) as caught:
        Settings(redis_url="redis+sentinel://:hunter2@h1:26379")
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_a_topology_error_is_a_value_error():
    with pytest.raises(TopologyError):
        parse_topology("redis+sentinel://h1")


@pytest.fixture
def lone_node(tmp_path):
    """A real valkey-server: cluster-enabled with no slots assigned, or a plain one."""
    started: list[Node] = []

    def start(cluster: bool) -> Node:
        port, bus = _free_ports(2)
        args = ["--cluster-enabled", "yes", "--cluster-port", str(bus)] if cluster else []
        node = Node(tmp_path, port, args, f"node{len(started)}")
        started.append(node)
        node.wait_up()
        return node

    yield start
    for node in started:
        node.kill()


def test_a_cluster_with_uncovered_slots_is_refused_at_start(lone_node):
    node = lone_node(cluster=True)
    with pytest.raises(ConfigError) as caught:
        connection.make_client(Settings(redis_url=f"redis+cluster://127.0.0.1:{node.port}"))
    assert str(caught.value) == (
        f"redis_url: the cluster at 127.0.0.1:{node.port} has only 0 of its 16384 slots "
        "assigned; assign the rest (CLUSTER ADDSLOTSRANGE)"
    )


def test_a_cluster_url_naming_a_plain_server_is_refused(lone_node):
    node = lone_node(cluster=False)
    with pytest.raises(ConfigError) as caught:
        connection.make_client(Settings(redis_url=f"redis+cluster://127.0.0.1:{node.port}"))
    assert f"redis_url: 127.0.0.1:{node.port} is not a cluster node" in str(caught.value)
    assert "use redis:// for one server" in str(caught.value)


def test_sentinel_and_cluster_tables_mean_the_same_as_their_urls(tmp_path):
    from steep.settings import load_settings

    (tmp_path / "steep.toml").write_text(
        "[sentinel]\n"
        'hosts = ["10.0.0.1:26379", "10.0.0.2:26380"]\n'
        'service = "orders"\ndb = 2\n'
        'password_env = "DATA_PW"\nsentinel_password_env = "SENTINEL_PW"\n'
    )
    settings = load_settings(tmp_path, environ={"DATA_PW": "p@ss/word", "SENTINEL_PW": "s"})
    topology = parse_topology(settings.redis_url)
    assert topology == Topology(
        kind="sentinel",
        hosts=(("10.0.0.1", 26379), ("10.0.0.2", 26380)),
        service="orders",
        db=2,
        password="p@ss/word",
        sentinel_password="s",
    )
    assert "p@ss" not in repr(settings)  # the URL made from the table is shown redacted
    (tmp_path / "steep.toml").write_text('[cluster]\nhosts = ["h1:7000", "h2:7001"]\ntls = true\n')
    topology = parse_topology(load_settings(tmp_path, environ={}).redis_url)
    assert (topology.kind, topology.hosts, topology.tls) == (
        "cluster",
        (("h1", 7000), ("h2", 7001)),
        True,
    )
    # a URL from the environment wins over the file's table, as every variable does
    chosen = load_settings(tmp_path, environ={"STEEP_REDIS_URL": "redis://127.0.0.1:6390/1"})
    assert chosen.redis_url == "redis://127.0.0.1:6390/1"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[sentinel]\nhosts = ["h:1"]\n', "'sentinel.service' must be the name the sentinels"),
        ('[cluster]\nhosts = ["nohost"]\n', "'cluster.hosts' must be a list of \"host:port\""),
        ('[cluster]\nhosts = ["h:1"]\nservice = "x"\n', "'cluster.service' must be a table of"),
        (
            '[cluster]\nhosts = ["h:1"]\npassword_env = "UNSET_PW"\n',
            "[cluster] password_env: the variable UNSET_PW is not set",
        ),
        (
            'redis_url = "redis://h:1"\n[cluster]\nhosts = ["h:1"]\n',
            "steep.toml:2: 'redis_url' and [cluster] both say where Redis is: keep one",
        ),
        (
            '[sentinel]\nhosts = ["h:1"]\nservice = "s"\n[cluster]\nhosts = ["h:1"]\n',
            "[sentinel] and [cluster] both say where Redis is",
        ),
    ],
)
def test_a_bad_sentinel_or_cluster_table_is_one_line(tmp_path, text, says):
    from steep.settings import load_settings

    (tmp_path / "steep.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})
    assert says in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)
