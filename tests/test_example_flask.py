"""The Flask example (examples/flask_app): an endpoint enqueues, a real worker runs the job
inside the app context; the dashboard mounted into the WSGI app asks for credentials."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from steep import Job, middleware
from steep.contrib.flask import AppContext
from steep.settings import ConfigError, get_settings
from tests.conftest import ROOT

APP = ROOT / "examples" / "flask_app"
pytest_plugins = ["tests.smtp_servers"]  # the smtp fixture


@pytest.fixture
def bakery(client) -> Iterator[Any]:
    sys.path.insert(0, str(APP))
    import bakery

    yield bakery
    sys.path.remove(str(APP))
    middleware.clear()


def test_endpoint_enqueues_and_the_job_runs_in_the_app_context(bakery, run_worker):
    app = bakery.create_app({"BAKERY_NAME": "Test Bakery"})
    web = app.test_client()
    response = web.post("/bake", json={"loaf": "rye"})
    assert response.status_code == 202
    job_id = response.get_json()["job"]
    assert web.get(f"/jobs/{job_id}").get_json() == {"status": "queued", "result": None}

    run_worker()
    assert web.get(f"/jobs/{job_id}").get_json() == {
        "status": "succeeded",
        "result": f"Test Bakery baked a rye loaf (job {job_id})",
    }


def test_worker_subprocess_creates_the_app_and_runs_the_job(bakery, worker_cli):
    web = bakery.create_app().test_client()
    job_id = web.post("/bake", json={"loaf": "spelt"}).get_json()["job"]
    cli = worker_cli(
        "worker", "bakery.worker", "--burst", "-p", "1", env={"PYTHONPATH": f"{ROOT}:{APP}"}
    )
    assert cli.wait(60) == 0, cli.text
    result = web.get(f"/jobs/{job_id}").get_json()
    assert result["result"] == f"Corner Bakery baked a spelt loaf (job {job_id})", cli.text


def test_app_config_reaches_the_supervisor_and_its_processes(bakery, worker_cli, client):
    # STEEP_QUEUES is set only in app.config: a worker started with no -q must watch "ovens"
    bakery.create_app()
    job = bakery.jobs.bake.options(queue="ovens").enqueue("rye")
    cli = worker_cli(
        "worker", "bakery.worker", "--burst", "-p", "1", env={"PYTHONPATH": f"{ROOT}:{APP}"}
    )
    assert cli.wait(60) == 0, cli.text
    assert "on queues default,ovens" in cli.text  # the supervisor
    assert job.result(timeout=5).startswith("Corner Bakery baked a rye loaf"), cli.text


def test_app_config_configures_steep(bakery, settings):
    bakery.create_app({"STEEP_QUEUES": ["mail", "default"], "STEEP_CONCURRENCY": 3})
    assert get_settings().queues == ("mail", "default")
    assert get_settings().concurrency == 3
    with pytest.raises(ConfigError, match=r"app.config: .*'queues' must be an array"):
        bakery.create_app({"STEEP_QUEUES": "default"})


def test_only_the_newest_apps_context_is_pushed(bakery, run_worker):
    bakery.create_app({"BAKERY_NAME": "Old"})
    app = bakery.create_app({"BAKERY_NAME": "New"})
    job_id = app.test_client().post("/bake", json={"loaf": "bap"}).get_json()["job"]
    assert len([mw for mw in middleware.installed() if isinstance(mw, AppContext)]) == 1
    run_worker()
    assert Job(job_id, "default").result(timeout=5).startswith("New baked")


def test_dashboard_mounted_in_flask_requires_credentials(bakery):
    app = bakery.create_app({"DASHBOARD_PASSWORD": "s3cret"})
    web = app.test_client()
    assert web.get("/steep/").status_code == 401
    page = web.get("/steep/", auth=("steep", "s3cret"))
    assert page.status_code == 200
    assert "/steep/static/" in page.get_data(as_text=True)  # links know where it is mounted
    assert (
        web.get("/steep/api/status", auth=("steep", "s3cret")).get_json()["totals"]["queued"] == 0
    )
    assert web.post("/bake", json={}).status_code == 202  # Flask's own routes still answer


def test_with_steep_fake_the_endpoint_is_tested_without_a_worker(bakery, steep_fake):
    # steep.testing's fake mode (a fixture of steep's pytest plugin): recorded, not run
    web = bakery.create_app({"BAKERY_NAME": "Fake Bakery"}).test_client()
    assert web.post("/bake", json={"loaf": "rye"}).status_code == 202
    [record] = steep_fake.assert_enqueued(bakery.jobs.bake, "rye", queue="default", count=1)
    # drain() runs it in this process, inside the app context, as a worker would
    assert steep_fake.drain() == [f"Fake Bakery baked a rye loaf (job {record.id})"]


def test_with_the_steep_fixture_drain_runs_what_the_endpoint_enqueued(bakery, steep):
    # a private server for the session, a flushed namespace per test, drain() in-process
    web = bakery.create_app({"BAKERY_NAME": "Drained Bakery"}).test_client()
    job_id = web.post("/bake", json={"loaf": "spelt"}).get_json()["job"]
    assert steep.drain() == 1
    assert web.get(f"/jobs/{job_id}").get_json() == {
        "status": "succeeded",
        "result": f"Drained Bakery baked a spelt loaf (job {job_id})",
    }


def test_the_mail_helper_renders_templates_and_the_worker_sends_it(bakery, smtp, run_worker):
    recorder = smtp(env="staging", intercept_to=["team@example.com"])
    app = bakery.create_app({"BAKERY_NAME": "Test Bakery"})
    response = app.test_client().post(
        "/subscribe", json={"email": "ann@customer.test", "name": "Ann"}
    )
    assert response.status_code == 202
    run_worker()
    [got] = recorder.received
    assert got.rcpt_tos == ["team@example.com"] and got.mail_from == "hello@bakery.example.com"
    message = got.message
    assert message["Subject"] == "[staging] Welcome"
    assert message["X-Intercepted-To"] == "ann@customer.test"
    assert message.get_body(("plain",)).get_content().strip() == (
        "Welcome to Test Bakery, Ann! Fresh loaves every morning."
    )
    assert "<b>Test Bakery</b>" in message.get_body(("html",)).get_content()
