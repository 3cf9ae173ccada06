"""Finding the embedded server of a data dir: its files, its socket, and whether it runs.

Every process derives the same paths from the same data dir (`server_paths`); a server
is judged by what answers on the socket (`_probe`, `_await`) and by the live
valkey-server processes running its conf, never by the pid file alone. `server_info`
reports on the running one. Starting and stopping it is steep.server.lifecycle.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from steep.settings import Settings, project_root

# sun_path holds 104 bytes on macOS and 108 on Linux, NUL included; one limit for both
# keeps the choice of socket path identical on every machine.
_SOCKET_PATH_LIMIT = 100
_Probe = Literal["up", "loading", "busy", "down"]


class ServerError(RuntimeError):
    """The embedded server cannot be found, started, reached or stopped."""


@dataclass(frozen=True, slots=True)
class ServerPaths:
    """Where the embedded server of one data dir keeps its files."""

    data_dir: Path
    socket: Path
    conf: Path
    pid: Path
    log: Path
    lock: Path


def server_paths(settings: Settings) -> ServerPaths:
    """The server files for `settings.data_dir`; every process computes the same socket."""
    data_dir = settings.data_dir.resolve()
    socket = data_dir / "valkey.sock"
    if len(os.fsencode(socket)) > _SOCKET_PATH_LIMIT:
        digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]
        # /tmp rather than $TMPDIR: a service and a shell may see different TMPDIRs.
        tmp = Path("/tmp") if os.path.isdir("/tmp") else Path(tempfile.gettempdir())
        socket = tmp / f"steep-{os.getuid()}" / f"{digest}.sock"
    return ServerPaths(
        data_dir,
        socket,
        conf=data_dir / "valkey.conf",
        pid=data_dir / "valkey.pid",
        log=data_dir / "valkey.log",
        lock=data_dir / "server.lock",
    )


def _connect(socket: Path, timeout: float) -> redis.Redis:
    # No retries: redis-py's default backoff turns "nobody there" into seconds of waiting.
    return redis.Redis(
        unix_socket_path=str(socket),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _probe(socket: Path, timeout: float = 1.0) -> _Probe:
    try:
        with _connect(socket, timeout) as client:
            client.ping()
        return "up"
    except redis.BusyLoadingError:
        return "loading"
    except redis.TimeoutError:
        # Connected but no reply: alive and overloaded, which is no reason to start another.
        return "busy"
    except (redis.ConnectionError, OSError):
        return "down"
    except redis.RedisError:
        return "up"  # an error reply still means a live server answers here


def _is_gone(proc: psutil.Process) -> bool:
    # Zombies count as gone: under a PID 1 that never reaps, a dead daemon stays one.
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _read_pid(paths: ServerPaths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None  # missing, or just created and still empty


def _server_process(paths: ServerPaths) -> psutil.Process | None:
    """The live valkey-server named by the pid file, if it really serves this data dir."""
    if (pid := _read_pid(paths)) is None:
        return None
    try:
        proc = psutil.Process(pid)
        # A recycled pid belongs to some other program, whose command line differs.
        if not _is_gone(proc) and str(paths.conf) in proc.cmdline():
            return proc
    except psutil.Error:
        pass
    return None


def _server_processes(paths: ServerPaths) -> list[psutil.Process]:
    """Every live valkey-server running this data dir's conf, named by the pid file or not.

    The pid file misses two kinds: a daemon that has forked but not yet written it (valkey
    creates it empty, then fills it), and one shutting down that has already removed it
    but still holds the AOF and will still unlink the socket path on its way out.
    """
    if proc := _server_process(paths):
        return [proc]
    conf = str(paths.conf)
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            # The binary as well as the conf: an editor open on valkey.conf is no server.
            if (
                conf in cmdline[1:]
                and Path(cmdline[0]).name.startswith("valkey-server")
                and not _is_gone(proc)
            ):
                found.append(proc)
    return found


def project_of(data_dir: Path) -> Path | None:
    """The project a data dir belongs to: the nearest steep.toml or pyproject.toml above it."""
    return project_root(data_dir.parent)


def other_servers(paths: ServerPaths) -> list[tuple[int, Path]]:
    """(pid, data dir) of the live embedded servers of the same project as `paths` that use
    another data dir: a process that starts a server beside them splits the project in two.
    Data dirs outside any project (no steep.toml or pyproject.toml above) are never compared.
    """
    project = project_of(paths.data_dir)
    if project is None:
        return []
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, IndexError):
            cmdline = proc.cmdline()
            if not Path(cmdline[0]).name.startswith("valkey-server") or _is_gone(proc):
                continue
            conf = next((Path(a) for a in cmdline[1:] if a.endswith("valkey.conf")), None)
            if conf is None or conf == paths.conf or proc.uids().real != os.getuid():
                continue
            if project_of(conf.parent) == project:
                found.append((proc.pid, conf.parent))
    return found


def _await(paths: ServerPaths, timeout: float) -> str:
    """Wait until the server answers: "up", or "busy", "gone" (no process) or "stuck"."""
    deadline = time.monotonic() + timeout
    while True:
        state = _probe(paths.socket)
        if state == "up":
            return "up"
        now = time.monotonic()
        if state == "loading":
            deadline = max(deadline, now + timeout)  # replaying a big AOF is progress
        # Judged by the processes, never by the pid file alone: reading it while a starting
        # daemon fills it, or after one shutting down removed it, would call a live server
        # dead, and the caller would then terminate it or start a second one beside it.
        elif state == "down" and not _server_processes(paths):
            return "gone"
        if now >= deadline:
            return "busy" if state == "busy" else "stuck"
        time.sleep(0.02)


def _prepare_dirs(paths: ServerPaths, create: bool = True) -> None:
    if create:
        paths.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = paths.socket.parent
    if directory == paths.data_dir:
        return
    # The short-socket dir sits in a shared /tmp, where another user could plant a fake
    # server: trust it, and connect to anything in it, only if it is private and ours.
    if create:
        directory.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        st = directory.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ServerError(
                f"refusing to use {directory} for the server socket: it must "
                "be a directory owned by this user with mode 0700"
            )


def server_info(settings: Settings) -> dict[str, Any] | None:
    """What the running embedded server reports about itself, or None if none runs.

    Keys: pid, socket, version, uptime (s), data_dir, aof, fsync, used_memory (bytes),
    used_memory_human, loading, log_file.
    """
    paths = server_paths(settings)
    _prepare_dirs(paths, create=False)
    try:
        with _connect(paths.socket, 2.0) as client:
            info = {**client.info("server"), **client.info("memory"), **client.info("persistence")}
            fsync = str(client.config_get("appendfsync").get("appendfsync", "?"))
    except (redis.ConnectionError, redis.TimeoutError):
        return None
    return {
        "pid": int(info["process_id"]),
        "socket": str(paths.socket),
        "version": str(info.get("valkey_version") or info["redis_version"]),
        "uptime": int(info["uptime_in_seconds"]),
        "data_dir": str(paths.data_dir),
        "aof": bool(info["aof_enabled"]),
        "fsync": fsync,
        "used_memory": int(info["used_memory"]),
        "used_memory_human": str(info["used_memory_human"]),
        "loading": bool(info["loading"]),
        "log_file": str(paths.log),
    }
