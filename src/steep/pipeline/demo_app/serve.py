"""Serving the shop's releases without refusing a single request.

    python3 serve.py restart    start the app, or move it to the release `current` names
    python3 serve.py stop

A small master process holds the listening socket for the app's whole life. On a
restart (SIGHUP) it starts a process from the release `current` points to, waits until
that process says it is ready, and only then lets the old one finish the request in
hand and exit: the two overlap, so no connection is refused or dropped. A release that
does not start leaves the old process serving, and `restart` exits 1 saying why.

The deploy runs `restart` in the new release with STEEP_DEPLOY_PATH (where releases/,
shared/ and current live) and the environment's variables (PORT, STEEP_ENV).
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("STEEP_DEPLOY_PATH", ".")).resolve()
SHARED = ROOT / "shared"
PIDFILE = SHARED / "serve.pid"
STATE = SHARED / "serve.json"
LOG = SHARED / "app.log"
READY_TIMEOUT = 20.0


def state() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {"generation": 0}


def write_state(**fields: object) -> None:
    partial = STATE.with_suffix(".partial")
    partial.write_text(json.dumps(fields))
    os.replace(partial, STATE)


def master_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def spawn(listener: socket.socket) -> tuple[subprocess.Popen | None, str, str]:
    """A process of the release `current` names, once it is ready (else None, why)."""
    release = (ROOT / "current").resolve()
    with open(LOG, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, str(release / "app.py"), str(listener.fileno())],
            cwd=release,
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert child.stdout is not None
    readable, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT)
    line = child.stdout.readline() if readable else b""
    if line.strip() == b"ready":
        return child, release.name, ""
    child.kill()
    child.wait()
    why = f"release {release.name} did not start (exit code {child.returncode}; see {LOG})"
    return None, release.name, why


def master(port: int) -> None:
    asked: list[str] = []
    signal.signal(signal.SIGHUP, lambda *_: asked.append("restart"))
    signal.signal(signal.SIGTERM, lambda *_: asked.append("stop"))
    listener = socket.create_server(("127.0.0.1", port), backlog=256)
    listener.set_inheritable(True)
    generation = state().get("generation", 0) + 1
    child, release, why = spawn(listener)
    write_state(generation=generation, release=release, ok=child is not None, error=why)
    PIDFILE.write_text(str(os.getpid()))
    while True:
        time.sleep(0.02)
        if child is not None and child.poll() is not None and not asked:
            asked.append("restart")  # it crashed: start the current release again
        if not asked:
            continue
        what = asked.pop(0)
        if what == "stop":
            if child is not None:
                child.terminate()
                child.wait(30)
            PIDFILE.unlink(missing_ok=True)
            return
        generation += 1
        new, name, why = spawn(listener)
        if new is not None:
            old, child, release = child, new, name
            if old is not None:
                old.terminate()  # it finishes the request in hand, then exits
                old.wait(30)
        write_state(generation=generation, release=name, ok=new is not None, error=why)


def restart() -> int:
    before = state().get("generation", 0)
    pid = master_pid()
    if pid is None:
        with open(LOG, "ab") as log:
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "master"],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # it outlives the deploy's restart command
            )
    else:
        os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + READY_TIMEOUT + 10
    while time.monotonic() < deadline:
        now = state()
        if now.get("generation", 0) > before and master_pid() is not None:
            if now.get("ok"):
                print(f"serving release {now['release']} (generation {now['generation']})")
                return 0
            print(now.get("error") or "the release did not start", file=sys.stderr)
            return 1
        time.sleep(0.02)
    print(f"the app's master did not answer within {READY_TIMEOUT + 10:.0f} s", file=sys.stderr)
    return 1


def stop() -> int:
    pid = master_pid()
    if pid is None:
        print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while master_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    return 0 if master_pid() is None else 1


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "master":
        master(int(os.environ["PORT"]))
    elif command == "restart":
        sys.exit(restart())
    elif command == "stop":
        sys.exit(stop())
    else:
        sys.exit("usage: serve.py restart|stop")
