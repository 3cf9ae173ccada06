"""`steep pipeline server` as a user starts it, on a machine with no Redis configured:
the embedded Valkey starts by itself, a signed webhook over real HTTP starts a run that
the server's own worker builds, and the dashboard and its API show it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import httpx2

from steep.settings import Settings
from tests.conftest import ROOT, free_port, wait_for
from tests.pipeline_fixtures import Repo, definition, github_push, post_hook

SECRET = "server-test-secret"


def test_the_server_serves_webhooks_and_the_dashboard_and_builds(tmp_path):
    repo = Repo(tmp_path)
    repo.commit({"steep.toml": definition([{"name": "t", "run": "echo built by the server"}])})
    sha = repo.push("main")
    data = tmp_path / "data"
    (tmp_path / "steep.toml").write_text(
        f'data_dir = "{data}"\nheartbeat_interval = 0.5\nheartbeat_timeout = 3.0\n'
        "[pipeline.projects.shop]\n"
        f'repo = "{repo.origin}"\nforge = "github"\nwebhook_secret_env = "SHOP_SECRET"\n'
        "[pipeline.projects.docs]\n"
        f'repo = "{repo.origin}"\nforge = "github"\nwebhook_secret_env = "DOCS_SECRET"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEEP_")}
    env.update(SHOP_SECRET=SECRET, PYTHONPATH=str(ROOT / "src"))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steep",
            "pipeline",
            "server",
            "--port",
            str(port),
            "--builders",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output: list[str] = []

    def read() -> None:
        with server.stdout:
            output.extend(line.decode() for line in server.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx2.get(f"{base}/pipeline", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_for(up, timeout=60, message="the pipeline server to answer")
        assert any(
            "project 'docs' accepts no webhook: DOCS_SECRET is not set" in line for line in output
        )
        body = json.dumps(github_push("main", sha)).encode()
        answer = post_hook(f"{base}/pipeline/hooks/github/shop", body, secret=SECRET)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run"]

        def finished() -> dict | None:
            run = httpx2.get(f"{base}/api/pipeline/runs/{run_id}", timeout=5).json()
            return run if run["state"] in ("passed", "failed", "error", "cancelled") else None

        run = wait_for(finished, timeout=90, message=f"run {run_id} to end")
        assert run["state"] == "passed", run
        assert run["steps"][0]["name"] == "t" and run["steps"][0]["exit_code"] == 0
        log = httpx2.get(f"{base}/api/pipeline/runs/{run_id}/log?step=t", timeout=5).json()
        assert "built by the server" in log["lines"] and log["done"]
        page = httpx2.get(f"{base}/pipeline/runs/{run_id}", timeout=5).text
        assert run_id in page and sha in page
        # the embedded Valkey was started for it, in the data dir
        assert any(data.rglob("*.sock"))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(60)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
            from steep import server as embedded

            embedded.stop_server(Settings(data_dir=data))
            reader.join(10)
    assert code == 0, "".join(output[-30:])
