"""Fixtures of the pipeline's tests: a real git "origin" (a bare repository made by the
test) with a working clone that commits and pushes, the CI server's steep.toml, and
real `steep worker steep.pipeline.jobs` processes building from it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from steep.settings import configure
from tests.conftest import FAST_CONFIG, ROOT, ServerHandle, WorkerCLI, wait_for

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Dev",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Dev",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}
FINAL = ("passed", "failed", "cancelled", "error")


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def definition(steps: list[dict[str, Any]], **top: Any) -> str:
    """An app's steep.toml with a build definition."""
    lines = ["[pipeline]"] + [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for step in steps:
        lines.append("[[pipeline.steps]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in step.items()]
    return "\n".join(lines) + "\n"


class Repo:
    """A bare origin and a working clone of it."""

    def __init__(self, root: Path) -> None:
        self.origin = root / "origin.git"
        self.work = root / "work"
        git("init", "--bare", "--quiet", "--initial-branch=main", str(self.origin))
        git("clone", "--quiet", str(self.origin), str(self.work))
        git("checkout", "--quiet", "-B", "main", cwd=self.work)

    def commit(
        self, files: dict[str, str], message: str = "change", branch: str | None = None
    ) -> str:
        if branch:
            git("checkout", "--quiet", "-B", branch, cwd=self.work)
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            git("add", name, cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, branch: str = "main") -> str:
        git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def checkout(self, branch: str) -> None:
        git("checkout", "--quiet", branch, cwd=self.work)


class CI:
    """The CI server's configuration, and its build workers."""

    def __init__(self, root: Path, server: ServerHandle, client: redis.Redis) -> None:
        self.root = root
        self.server = server
        self.client = client
        self.repo = Repo(root)
        self.data = root / "data"
        self.config_path = root / "ci" / "steep.toml"
        self.config_path.parent.mkdir()
        self.workers: list[WorkerCLI] = []
        self.env: dict[str, str] = {}
        self.configure()

    def configure(self, url: str = "http://127.0.0.1:8500", **project: Any) -> None:
        """Write the CI server's steep.toml (project `shop`) and use it in this process."""
        table = {"repo": str(self.repo.origin), "forge": "none", **project}
        text = FAST_CONFIG + f'data_dir = "{self.data}"\n[pipeline]\nurl = "{url}"\n'
        text += "[pipeline.projects.shop]\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in table.items()
        )
        self.config_path.write_text(text)
        configure(pipeline={"url": url, "projects": {"shop": table}}, data_dir=self.data)

    def worker(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        queues: str = "pipeline-control,pipeline",
    ) -> WorkerCLI:
        full_env = {
            **os.environ,
            "STEEP_REDIS_URL": self.server.url,
            "PYTHONPATH": str(ROOT),
            "STEEP_CONFIG": str(self.config_path),
            **self.env,
            **(env or {}),
        }
        cli = WorkerCLI(
            ["worker", "steep.pipeline.jobs", "-q", queues, "-c", "4", "-p", "1", *args], full_env
        )
        self.workers.append(cli)
        return cli

    def run(self, run_id: str) -> Any:
        from steep.pipeline import get_run

        return get_run(run_id)

    def wait(self, run_id: str, timeout: float = 60.0, states: tuple[str, ...] = FINAL) -> Any:
        def done() -> Any:
            run = self.run(run_id)
            return run if run is not None and run.state in states else None

        return wait_for(done, timeout=timeout, message=f"run {run_id} in {states}")

    def wait_step(self, run_id: str, step: str, timeout: float = 30.0) -> Any:
        def done() -> Any:
            run = self.run(run_id)
            record = run.step(step) if run else None
            finished = ("passed", "failed", "cancelled", "skipped", "error")
            return record if record is not None and record.state in finished else None

        return wait_for(done, timeout=timeout, message=f"step {step} of {run_id} to end")

    def stop(self) -> None:
        for cli in self.workers:
            if cli.proc.poll() is None:
                cli.kill_tree()


@pytest.fixture
def ci(client: redis.Redis, server: ServerHandle, tmp_path: Path, settings: Any) -> Iterator[CI]:
    handle = CI(tmp_path, server, client)
    yield handle
    handle.stop()


@pytest.fixture
def app_steps() -> Callable[..., str]:
    return definition


@pytest.fixture
def ci_web(ci: CI, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CI server's HTTP side in this process: webhooks in front of the dashboard
    with the pipeline's pages, on a free loopback port (as `steep pipeline server`)."""
    import threading

    from steep.pipeline.server import with_webhooks
    from steep.pipeline.web import extension
    from steep.web.serve import build_server
    from tests.conftest import free_port

    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    server = build_server("127.0.0.1", port, extensions=[extension()], wrap=with_webhooks)
    server.config.install_signal_handlers = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, message="the CI server to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def github_push(ref: str, sha: str, message: str = "change") -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{ref}",
        "after": sha,
        "deleted": False,
        "head_commit": {"id": sha, "message": message, "author": {"name": "Ada Dev"}},
        "repository": {"full_name": "acme/shop"},
    }


def github_pull_request(number: int, head: str, head_sha: str, base: str, action: str = "opened"):
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "title": "A feature",
            "user": {"login": "ada"},
            "head": {"ref": head, "sha": head_sha},
            "base": {"ref": base},
        },
        "repository": {"full_name": "acme/shop"},
    }


def post_hook(
    url: str,
    body: bytes,
    *,
    forge: str = "github",
    event: str = "push",
    secret: str | None = None,
    delivery: str | None = None,
    signature: str | None = None,
) -> Any:
    import hashlib
    import hmac
    import uuid

    import httpx2

    headers = {"Content-Type": "application/json"}
    if secret is not None and signature is None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        signature = f"sha256={digest}" if forge == "github" else digest
    prefix = "X-GitHub" if forge == "github" else "X-Gitea"
    if signature is not None:
        headers["X-Hub-Signature-256" if forge == "github" else "X-Gitea-Signature"] = signature
    headers[f"{prefix}-Event"] = event
    headers[f"{prefix}-Delivery"] = delivery or str(uuid.uuid4())
    return httpx2.post(url, content=body, headers=headers, timeout=10)


class Recorder:
    """An HTTP server on loopback that records every request and answers with the
    status codes it is given, in order (then `then`). It stands in for a forge's status
    API and for a notification receiver, which cannot run here."""

    def __init__(self, answers: list[int] | None = None, then: int = 201) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        self.answers = list(answers or [])
        self.then = then
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                code = recorder.answers.pop(0) if recorder.answers else recorder.then
                recorder.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(body or b"null"),
                        "answered": code,
                    }
                )
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(answers: list[int] | None = None, then: int = 201) -> Recorder:
        made.append(Recorder(answers, then))
        return made[-1]

    yield make
    for r in made:
        r.close()
