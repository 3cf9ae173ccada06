"""Running one step's command: a shell in its own process group, its output read line
by line, the whole group ended on timeout or cancel.

The command is the build definition's own shell text, run as `/bin/sh -c <text>` (an
argv list: nothing of steep's is pasted into it). Its environment is built from
scratch: a few variables of the worker's (PATH, HOME, locale), the run's facts, the
definition's `env`, and for branch builds the project's build secrets; never the
worker's other variables, so a pull request's build cannot read the server's tokens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psutil

KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "SHELL")
GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a step's process group
CHECK_EVERY = 0.25  # seconds between looks at the deadline and the cancel flag


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int | None  # None: ended by steep (timeout or cancel)
    reason: str | None = None  # why steep ended it, or what went wrong


def base_environment() -> dict[str, str]:
    return {k: os.environ[k] for k in KEPT_VARIABLES if k in os.environ}


def _end_group(
    pgid: int, grace: float = GRACE, leader: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after `grace` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()  # reap it: a zombie leader would keep the group "alive"
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def end_stale(pid: int | None, started: float | None) -> bool:
    """End the process group of an earlier attempt of a step whose worker died, if it
    still runs on this machine (the same pid *and* start time: never a reused pid)."""
    if not pid or started is None:
        return False
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > 1.0:
            return False
    except psutil.Error:
        return False
    _end_group(pid, grace=1.0)
    return True


def run(
    script: str | list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    on_line: Callable[[str], None],
    should_stop: Callable[[], str | None],
    on_start: Callable[[int, float], None] | None = None,
    stdin: bytes | BinaryIO | None = None,
) -> Outcome:
    """Run `script` (shell text, or an argv list run as is), feeding each output line to
    `on_line`, until it exits, `timeout` seconds pass, or `should_stop()` returns a
    reason. `stdin` is what it reads (bytes, or an open file), else nothing."""
    argv = ["/bin/sh", "-c", script] if isinstance(script, str) else script
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE
            if isinstance(stdin, bytes)
            else (stdin if stdin is not None else subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as a whole
        )
    except OSError as exc:
        what = "the shell" if isinstance(script, str) else argv[0]
        return Outcome(None, f"could not start {what}: {exc.strerror or exc}")
    if isinstance(stdin, bytes):
        threading.Thread(target=_feed, args=(process, stdin), daemon=True).start()
    if on_start is not None:
        try:
            started = psutil.Process(process.pid).create_time()
        except psutil.Error:
            started = time.time()
        on_start(process.pid, started)
    reader = threading.Thread(target=_read, args=(process, on_line), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    reason: str | None = None
    while True:
        try:
            process.wait(CHECK_EVERY)
            break
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            reason = f"timed out after {timeout:g} s: its processes were ended"
        elif stopped := should_stop():
            reason = stopped
        if reason:
            _end_group(process.pid, leader=process)
            process.wait()
            break
    # what the command left running in the background goes with it
    _end_group(process.pid, grace=1.0, leader=process)
    reader.join(10)
    if reason:
        return Outcome(None, reason)
    return Outcome(process.returncode)


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(OSError):  # it may exit without reading it all
        process.stdin.write(data)
    with contextlib.suppress(OSError):
        process.stdin.close()


def _read(process: subprocess.Popen[bytes], on_line: Callable[[str], None]) -> None:
    assert process.stdout is not None
    buffered = b""
    fd = process.stdout.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            on_line(line.decode("utf-8", errors="replace"))
        if len(buffered) > 8192:  # a long line without an end: show it in pieces
            on_line(buffered.decode("utf-8", errors="replace"))
            buffered = b""
    if buffered:
        on_line(buffered.decode("utf-8", errors="replace"))
    process.stdout.close()
