"""The embedded Valkey server, exercised against the real valkey-server binary."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from steep.server import (
    ServerError,
    connection_kwargs,
    ensure_server,
    run_foreground,
    server_info,
    server_paths,
    stop_server,
)
from steep.server import lifecycle as server  # START_TIMEOUT and _start_daemon are patched here
from steep.settings import Settings

DEADLINE = 30.0  # generous: a loaded machine starts Python and valkey slowly


def wait_for(condition: Callable[[], object], timeout: float = DEADLINE, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def servers_under(root: Path) -> list[psutil.Process]:
    """Live valkey-server processes whose config file lies under `root`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
            arg.startswith(str(root)) and arg.endswith("valkey.conf") for arg in cmdline
        ):
            found.append(proc)
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def client_for(sock: str) -> redis.Redis:
    return redis.Redis(unix_socket_path=sock, socket_timeout=5, decode_responses=True)


def get(sock: str, key: str) -> str | None:
    client = client_for(sock)
    try:
        return client.get(key)
    finally:
        client.close()


def set_(sock: str, key: str, value: str) -> None:
    client = client_for(sock)
    try:
        client.set(key, value)
    finally:
        client.close()


@pytest.fixture
def root() -> Iterator[Path]:
    """A short private dir under /tmp; every server started below it is stopped afterwards."""
    path = Path(tempfile.mkdtemp(prefix="steep-t-", dir="/tmp")).resolve()
    yield path
    for conf in path.rglob("valkey.conf"):
        with contextlib.suppress(ServerError):
            stop_server(Settings(data_dir=conf.parent), timeout=5)
    for proc in servers_under(path):  # whatever stop_server could not reach
        proc.kill()
    for proc in servers_under(path):
        wait_for(lambda p=proc: gone(p.pid), what=f"pid {proc.pid} to die")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(root: Path) -> Settings:
    return Settings(data_dir=root / "data")


def test_start_then_attach_reuses_the_same_server(settings: Settings, root: Path) -> None:
    sock = ensure_server(settings)
    assert sock == str(settings.data_dir / "valkey.sock")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o700
    info = server_info(settings)
    assert info is not None
    assert info["aof"] is True and info["fsync"] == "everysec"
    assert info["version"].split(".")[0] >= "9"
    assert info["data_dir"] == str(settings.data_dir) and info["socket"] == sock

    assert ensure_server(Settings(data_dir=settings.data_dir)) == sock
    again = server_info(settings)
    assert again is not None and again["pid"] == info["pid"]
    assert [p.pid for p in servers_under(root)] == [info["pid"]]

    conf = (settings.data_dir / "valkey.conf").read_text()
    for line in (
        "port 0",
        "unixsocketperm 700",
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        "daemonize yes",
    ):
        assert f"\n{line}\n" in conf


def test_fsync_policy_comes_from_settings(root: Path) -> None:
    settings = Settings(data_dir=root / "data", fsync="always")
    ensure_server(settings)
    info = server_info(settings)
    assert info is not None and info["fsync"] == "always"


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from steep.server import ensure_server, server_info
    from steep.settings import Settings

    go = Path(sys.argv[2])
    while not go.exists():  # start together, to make the race real
        time.sleep(0.001)
    settings = Settings(data_dir=Path(sys.argv[1]))
    print(ensure_server(settings), server_info(settings)["pid"])
""")


def test_concurrent_callers_start_exactly_one_server(settings: Settings, root: Path) -> None:
    go = root / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(settings.data_dir), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    go.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    assert len(set(outputs)) == 1, outputs
    sock, pid = outputs[0].split()
    assert sock == str(settings.data_dir / "valkey.sock")
    assert [p.pid for p in servers_under(root)] == [int(pid)]
    assert (settings.data_dir / "valkey.log").read_text().count("Ready to accept") == 1


def test_killed_server_leaves_stale_files_and_is_restarted(settings: Settings) -> None:
    sock = ensure_server(settings)
    set_(sock, "job", "acknowledged before the kill")
    info = server_info(settings)
    assert info is not None
    os.kill(info["pid"], signal.SIGKILL)
    wait_for(lambda: gone(info["pid"]), what="the server to die")
    assert Path(sock).exists() and (settings.data_dir / "valkey.pid").exists()

    assert ensure_server(settings) == sock
    after = server_info(settings)
    assert after is not None and after["pid"] != info["pid"]
    # Killing the process loses nothing acknowledged: the AOF write precedes the reply.
    assert get(sock, "job") == "acknowledged before the kill"


def test_pid_file_of_an_unrelated_process_and_dead_socket_are_ignored(
    settings: Settings,
) -> None:
    paths = server_paths(settings)
    paths.data_dir.mkdir(parents=True)
    paths.pid.write_text(f"{os.getpid()}\n")  # alive, but not a valkey-server
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(paths.socket))  # a socket file nobody listens on
    dead.close()
    sock = ensure_server(settings)
    info = server_info(settings)
    assert info is not None and info["pid"] != os.getpid()
    assert get(sock, "missing") is None


LOCK_HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(600)
""")


def test_lock_of_a_killed_process_is_released(settings: Settings) -> None:
    settings.data_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(settings.data_dir / "server.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ServerError, match=r"timed out .*server\.lock, held by another"):
            ensure_server(settings, timeout=0.3)
    finally:
        holder.kill()
        holder.communicate()
    assert ensure_server(settings, timeout=5) == str(server_paths(settings).socket)


def test_waiting_for_the_lock_ends_when_the_server_answers(settings: Settings) -> None:
    sock = ensure_server(settings)
    fd = os.open(settings.data_dir / "server.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert ensure_server(settings, timeout=5) == sock
        assert run_foreground_error(settings)
    finally:
        os.close(fd)


def run_foreground_error(settings: Settings) -> str:
    with pytest.raises(ServerError, match="already running") as caught:
        run_foreground(settings)
    return str(caught.value)


def test_foreground_refuses_while_a_daemon_runs(settings: Settings) -> None:
    ensure_server(settings)
    info = server_info(settings)
    assert info is not None
    assert f"pid {info['pid']}" in run_foreground_error(settings)


def test_server_alive_without_its_socket_is_replaced(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "START_TIMEOUT", 1.0)
    sock = ensure_server(settings)
    set_(sock, "kept", "yes")
    old = server_info(settings)
    assert old is not None
    os.unlink(sock)
    assert ensure_server(settings) == sock
    new = server_info(settings)
    assert new is not None and new["pid"] != old["pid"]
    assert gone(old["pid"])
    assert get(sock, "kept") == "yes"


def test_long_data_dir_uses_a_short_socket_in_tmp(root: Path) -> None:
    settings = Settings(data_dir=root / ("d" * 60) / ("e" * 60))
    sock = ensure_server(settings)
    assert not sock.startswith(str(root))
    assert len(sock.encode()) < 100
    assert Path(sock).parent == Path("/tmp") / f"steep-{os.getuid()}"
    assert stat.S_IMODE(Path(sock).parent.stat().st_mode) == 0o700
    # Every process derives the same path from the same data dir.
    assert str(server_paths(Settings(data_dir=settings.data_dir)).socket) == sock
    assert server_paths(Settings(data_dir=root / ("d" * 61) / ("e" * 60))).socket != Path(sock)
    set_(sock, "k", "v")
    assert stop_server(settings)
    assert not Path(sock).exists()


def test_data_survives_stop_and_start(settings: Settings, root: Path) -> None:
    sock = ensure_server(settings)
    set_(sock, "job:1", "payload")
    info = server_info(settings)
    assert info is not None

    assert stop_server(settings) is True
    assert gone(info["pid"]) and not servers_under(root)
    assert not Path(sock).exists() and server_info(settings) is None

    assert ensure_server(settings) == sock
    assert get(sock, "job:1") == "payload"


def test_stop_without_a_server(settings: Settings) -> None:
    assert stop_server(settings) is False
    assert server_info(settings) is None


def test_start_failure_quotes_the_log(settings: Settings, root: Path) -> None:
    sock = ensure_server(settings)
    set_(sock, "k", "v")
    assert stop_server(settings)
    manifest = next((settings.data_dir / "appendonlydir").glob("*.manifest"))
    manifest.write_text("this is not a manifest\n")
    with pytest.raises(ServerError, match=r"(?s)exited while starting.*valkey\.log.*AOF manifest"):
        ensure_server(settings)
    assert not servers_under(root)


def test_connection_kwargs(settings: Settings) -> None:
    external = Settings(data_dir=settings.data_dir, redis_url="redis://localhost:6390/2")
    assert connection_kwargs(external) == {"url": "redis://localhost:6390/2"}
    assert not settings.data_dir.exists()  # nothing was started for an external server
    kwargs = connection_kwargs(settings)
    assert kwargs == {"unix_socket_path": str(settings.data_dir / "valkey.sock")}
    client = redis.Redis(**kwargs)
    try:
        assert client.ping()
    finally:
        client.close()


FOREGROUND = textwrap.dedent("""
    import sys
    from pathlib import Path
    from steep.server import run_foreground
    from steep.settings import Settings

    sys.exit(run_foreground(Settings(data_dir=Path(sys.argv[1]))))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_foreground_serves_until_signalled(
    settings: Settings, root: Path, signum: signal.Signals
) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", FOREGROUND, str(settings.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sock = str(server_paths(settings).socket)
        wait_for(lambda: server_info(settings) is not None, what="the foreground server")
        info = server_info(settings)
        assert info is not None and info["pid"] != runner.pid
        assert info["pid"] in [c.pid for c in psutil.Process(runner.pid).children()]
        # Others attach to it rather than starting their own.
        assert ensure_server(settings) == sock
        assert [p.pid for p in servers_under(root)] == [info["pid"]]
        set_(sock, "k", "v")

        runner.send_signal(signum)
        out, _ = runner.communicate(timeout=DEADLINE)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, out
    assert "ready to exit" in out.lower()  # its log went to the terminal
    assert gone(info["pid"]) and not Path(sock).exists()
    assert ensure_server(settings) == sock
    assert get(sock, "k") == "v"


def test_stop_reaches_a_server_whose_socket_is_gone(settings: Settings, root: Path) -> None:
    sock = ensure_server(settings)
    info = server_info(settings)
    assert info is not None
    os.unlink(sock)
    assert server_info(settings) is None
    assert stop_server(settings) is True  # SIGTERM to the pid from the pid file
    assert gone(info["pid"]) and not servers_under(root)


def test_a_shared_socket_dir_that_is_not_private_is_refused(root: Path) -> None:
    shared = root / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    paths = server_paths(Settings(data_dir=root / "data"))
    planted = dataclasses.replace(paths, socket=shared / "abc.sock")
    with pytest.raises(ServerError, match=r"refusing to use .*shared.* mode 0700"):
        server._prepare_dirs(planted)


def hide(settings: Settings) -> psutil.Process:
    """A started server, frozen with its pid file emptied and its socket file gone: what a
    daemon looks like after its fork and before it fills the pid file and binds, or while
    it shuts down after removing both."""
    ensure_server(settings)
    info = server_info(settings)
    assert info is not None
    proc = psutil.Process(info["pid"])
    proc.suspend()
    paths = server_paths(settings)
    paths.pid.write_text("")
    paths.socket.unlink()
    return proc


def test_a_live_server_the_pid_file_does_not_name_is_not_gone(settings: Settings) -> None:
    # The pid file read empty must not make a starting server look dead, whoever fills it
    # in the meantime: only the absence of its process does.
    paths = server_paths(settings)
    proc = hide(settings)
    try:
        assert server._await(paths, 0.3) == "stuck"
    finally:
        proc.resume()
        proc.terminate()
    wait_for(lambda: gone(proc.pid), what="the server to exit")
    assert server._await(paths, 5) == "gone"  # at once: no process, whatever the pid file
    paths.pid.write_text("999999999\n")  # a pid that cannot exist
    started = time.monotonic()
    assert server._await(paths, 5) == "gone"
    assert time.monotonic() - started < 1


def test_a_server_still_shutting_down_is_waited_for(
    settings: Settings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = hide(settings)
    set_started = []

    def start_daemon(paths: server.ServerPaths, settings: Settings) -> None:
        set_started.append(not gone(old.pid))  # was the old one still there?
        real_start_daemon(paths, settings)

    real_start_daemon = server._start_daemon
    monkeypatch.setattr(server, "_start_daemon", start_daemon)
    result: list[str | BaseException] = []
    thread = threading.Thread(target=lambda: result.append(call(ensure_server, settings)))
    thread.start()
    try:
        wait_for(lambda: lock_held(settings), what="ensure_server to take the lock")
        old.terminate()  # delivered on resume: it finishes its shutdown and exits
        old.resume()
    finally:
        thread.join(DEADLINE)
    assert result == [str(server_paths(settings).socket)]
    assert set_started == [False]
    new = server_info(settings)
    assert new is not None and [p.pid for p in servers_under(root)] == [new["pid"]]


def call(function: Callable[..., str], *args: object) -> str | BaseException:
    try:
        return function(*args)
    except BaseException as exc:  # reported by the test thread, not lost in this one
        return exc


def lock_held(settings: Settings) -> bool:
    fd = os.open(settings.data_dir / "server.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
