"""The FastAPI example (examples/fastapi_app): an endpoint enqueues with aenqueue, a real
worker runs the job, the dashboard at /steep answers and asks for credentials."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from steep import connection
from steep.settings import configure
from tests.conftest import ROOT, ServerHandle, wait_for

APP = ROOT / "examples" / "fastapi_app"


@pytest.fixture
def newsroom(client, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    configure(web_password="s3cret")  # as STEEP_WEB_PASSWORD would at start-up
    sys.path.insert(0, str(APP))
    import newsroom.main

    yield importlib.reload(newsroom.main)  # the dashboard reads the password when made
    sys.path.remove(str(APP))


def test_endpoint_enqueues_and_a_worker_runs_the_job(newsroom, run_worker):
    with TestClient(newsroom.app, client=("203.0.113.9", 1)) as web:
        response = web.post("/articles/hello-world/publish")
        assert response.status_code == 202
        job_id = response.json()["job"]
        assert web.get(f"/jobs/{job_id}").json() == {"result": None}
        run_worker()
        assert web.get(f"/jobs/{job_id}", params={"wait": 5}).json() == {
            "result": "published hello-world"
        }
        assert web.get("/steep/").status_code == 401
        assert web.get("/steep/", auth=("steep", "wrong")).status_code == 401
        page = web.get("/steep/", auth=("steep", "s3cret"))
        assert page.status_code == 200 and "/steep/static/" in page.text
        loop_clients = len(connection._async_clients)
        assert loop_clients >= 1  # aenqueue made the event loop's client
    # the lifespan closed the loop's client at shutdown
    assert len(connection._async_clients) == loop_clients - 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_under_uvicorn(newsroom, server: ServerHandle, run_worker):
    port = _free_port()
    env = {
        **os.environ,
        "STEEP_REDIS_URL": server.url,
        "STEEP_WEB_PASSWORD": "s3cret",
        "PYTHONPATH": f"{APP}:{ROOT / 'src'}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "newsroom.main:app", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx2.get(f"{base}/docs").status_code == 200
            except httpx2.TransportError:
                return False

        wait_for(up, timeout=30, message="uvicorn to answer")
        job_id = httpx2.post(f"{base}/articles/launch/publish").json()["job"]
        run_worker()
        result = httpx2.get(f"{base}/jobs/{job_id}", params={"wait": 5}).json()
        assert result == {"result": "published launch"}
        assert httpx2.get(f"{base}/steep/api/status").status_code == 401
        status = httpx2.get(f"{base}/steep/api/status", auth=("steep", "s3cret")).json()
        assert status["totals"]["queued"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "Application shutdown complete" in output
    assert "Unclosed" not in output and "Traceback" not in output, output


def test_with_steep_fake_the_endpoint_is_tested_without_a_worker(newsroom, steep_fake):
    # steep.testing's fake mode (a fixture of steep's pytest plugin): recorded, not run
    with TestClient(newsroom.app) as web:
        job_id = web.post("/articles/fresh-news/publish").json()["job"]
    [record] = steep_fake.assert_enqueued(newsroom.publish, "fresh-news", count=1)
    assert record.id == job_id
    assert steep_fake.drain() == ["published fresh-news"]


def test_with_steep_inline_the_job_runs_inside_the_request(newsroom, steep_inline):
    with TestClient(newsroom.app) as web:
        job_id = web.post("/articles/at-once/publish").json()["job"]
    assert job_id  # it ran during the request: nothing was left on any server
    assert connection.get_client().hlen("steep:{default}:jobs") == 0
