"""The demo's world: the sample app's repository and bare origin, the CI server on an
embedded Valkey of its own, the two app processes, a client polling each app every
10 ms, and the verbs a developer and a forge use on them (commit, push, a signed
webhook, a pull request, a merge). `steep.pipeline.demo` plays the flow on it;
benchmarks/deploy.py repeats parts of it to measure them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

APP = Path(__file__).parent / "demo_app"
PROJECT = "shop"
SECRET_ENV = "STEEP_DEMO_WEBHOOK_SECRET"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


class DemoFailed(Exception):
    """The flow did not go as it should: the message says where."""


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """(status, body) of a GET, or (None, why) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return None, str(exc)


@dataclass
class Sample:
    at: float
    status: int | None
    body: str


@dataclass
class Watcher:
    """Polls an app every 10 ms and keeps every answer."""

    url: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._poll, daemon=True, name=f"watch {self.url}").start()

    def stop(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            status, body = get(self.url, timeout=2.0)
            self.samples.append(Sample(time.time(), status, body))
            self._stop.wait(0.01)

    def failed(self, start: float, end: float) -> tuple[int, int]:
        """(failed, all) requests between two instants (a failure: no answer, or not 200)."""
        window = [s for s in self.samples if start <= s.at <= end]
        return sum(1 for s in window if s.status != 200), len(window)

    def first(self, text: str, after: float) -> float | None:
        return next(
            (s.at for s in self.samples if s.at >= after and s.status == 200 and text in s.body),
            None,
        )


class World:
    """The sample app, its origin, the CI server and the apps, step by step."""

    def __init__(self, root: Path, console: Console, *, ci_port: int = 0) -> None:
        self.root = root
        self.console = console
        self.origin = root / "origin.git"
        self.work = root / "shop"
        self.ci = root / "ci"
        self.srv = root / "srv"
        self.ci_port = ci_port or free_port(8500)
        self.staging_port = free_port(8001)
        self.production_port = free_port(8002)
        if self.production_port == self.staging_port:
            self.production_port = free_port(0)
        self.secret = secrets.token_hex(16)
        self.server: subprocess.Popen[bytes] | None = None
        self.watchers = {
            "staging": Watcher(f"http://127.0.0.1:{self.staging_port}/"),
            "production": Watcher(f"http://127.0.0.1:{self.production_port}/"),
        }
        self.pr = 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STEEP_")}
        self.env[SECRET_ENV] = self.secret
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ci_port}"

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    # -- git --------------------------------------------------------------------------

    def git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd or self.work,
            env={**self.env, **IDENTITY},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise DemoFailed(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")

    def make_repository(self) -> None:
        self.git(
            "init", "--quiet", "--bare", "--initial-branch=master", str(self.origin), cwd=self.root
        )
        self.git("init", "--quiet", "--initial-branch=master", str(self.work), cwd=self.root)
        for name in ("app.py", "serve.py", "migrate.py", "test_app.py", "VERSION"):
            shutil.copy(APP / name, self.work / name)
        (self.work / "steep.toml").write_text(
            (APP / "steep.toml.in")
            .read_text()
            .format(
                staging_port=self.staging_port,
                production_port=self.production_port,
                srv=self.srv,
            )
        )
        (self.work / ".gitignore").write_text("__pycache__/\ndata/\n")
        self.git("remote", "add", "origin", str(self.origin))
        self.commit("The shop, v1", {})
        self.git("push", "--quiet", "origin", "master")
        self.git("push", "--quiet", "origin", "master:staging")
        self.git("branch", "--quiet", "staging", "master")

    # -- the CI server ----------------------------------------------------------------

    def start_server(self) -> None:
        self.ci.mkdir()
        (self.ci / "steep.toml").write_text(
            f'[pipeline]\nurl = "{self.url}"\n\n'
            f"[pipeline.projects.{PROJECT}]\n"
            f'repo = "{self.origin}"\n'
            'forge = "github"\n'
            f'webhook_secret_env = "{SECRET_ENV}"\n'
        )
        log = open(self.ci / "server.log", "ab")  # noqa: SIM115 (the server's life)
        self.server = subprocess.Popen(
            [sys.executable, "-m", "steep", "pipeline", "server", "--port", str(self.ci_port)],
            cwd=self.ci,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.wait(
            lambda: get(f"{self.url}/api/pipeline/runs", 1)[0] == 200,
            60,
            f"the CI server to answer on {self.url} (its log: {self.ci / 'server.log'})",
        )

    def hook(self, event: str, payload: dict[str, Any]) -> None:
        """A webhook as GitHub sends it: JSON, signed with the project's secret."""
        body = json.dumps(payload).encode()
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"{self.url}/pipeline/hooks/github/{PROJECT}",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": f"sha256={digest}",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status >= 300:
                raise DemoFailed(f"the webhook was refused: {response.status}")

    def push(self, branch: str, message: str) -> tuple[str, float]:
        """Push a branch to the origin and tell the CI server, as a forge would."""
        sha = self.git("rev-parse", branch)
        self.git("push", "--quiet", "origin", f"{branch}:{branch}")
        pushed = time.time()
        self.hook(
            "push",
            {
                "ref": f"refs/heads/{branch}",
                "after": sha,
                "head_commit": {"id": sha, "message": message, "author": {"name": "Ada Lovelace"}},
                "repository": {"full_name": "acme/shop"},
            },
        )
        return sha, pushed

    def pull_request(self, head: str, base: str, title: str) -> int:
        self.pr += 1
        self.hook(
            "pull_request",
            {
                "action": "opened",
                "number": self.pr,
                "pull_request": {
                    "title": title,
                    "user": {"login": "ada"},
                    "head": {"ref": head, "sha": self.git("rev-parse", head)},
                    "base": {"ref": base},
                },
                "repository": {"full_name": "acme/shop"},
            },
        )
        return self.pr

    def merge(self, head: str, into: str, message: str) -> None:
        self.git("checkout", "--quiet", into)
        self.git("merge", "--quiet", "--no-ff", head, "-m", message)

    # -- waiting ----------------------------------------------------------------------

    def wait(self, done: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise DemoFailed(f"the CI server exited (its log: {self.ci / 'server.log'})")
            value = done()
            if value:
                return value
            time.sleep(0.05)
        raise DemoFailed(f"gave up waiting for {what} after {timeout:g} s")

    def runs(self) -> list[dict[str, Any]]:
        status, body = get(f"{self.url}/api/pipeline/runs?project={PROJECT}&limit=100", 5)
        return json.loads(body)["runs"] if status == 200 else []

    def wait_run(self, lane: str, sha: str, timeout: float = 120.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            for run in self.runs():
                final = run["state"] in ("passed", "failed", "cancelled", "error")
                if run.get("lane") == lane and run.get("sha") == sha and final:
                    return run
            return None

        return self.wait(finished, timeout, f"the run of {sha[:12]} on {lane}")  # type: ignore[no-any-return]

    def wait_answer(self, env: str, text: str, after: float, timeout: float = 120.0) -> float:
        """Seconds from `after` until the environment's app first answered with `text`."""
        watcher = self.watchers[env]
        at = self.wait(lambda: watcher.first(text, after), timeout, f"{env} to answer {text!r}")
        return float(at) - after

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "steep", "pipeline", *args, "--json"],
            cwd=self.ci,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise DemoFailed(f"steep pipeline {' '.join(args)}: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def history(self, env: str) -> list[dict[str, Any]]:
        return self.cli("history", PROJECT, env)["deploys"]  # type: ignore[no-any-return]

    # -- the processes ----------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[World]:
        try:
            yield self
        finally:
            for watcher in self.watchers.values():
                watcher.stop()
            for env in ("staging", "production"):
                self._stop_app(env)
            if self.server is not None and self.server.poll() is None:
                self.server.send_signal(signal.SIGTERM)
                try:
                    self.server.wait(60)
                except subprocess.TimeoutExpired:
                    self.server.kill()
            if self.ci.exists():  # the embedded Valkey the server started
                subprocess.run(
                    [sys.executable, "-m", "steep", "server", "--stop"],
                    cwd=self.ci,
                    env=self.env,
                    capture_output=True,
                    timeout=60,
                )

    def _stop_app(self, env: str) -> None:
        pidfile = self.srv / env / "shared" / "serve.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
