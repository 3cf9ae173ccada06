"""The dashboard's Cron page over HTTP: entries listed, trigger, pause and resume,
read-only mode."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from steep import configure, ops
from steep.web import create_app
from tests import cron_jobs
from tests.conftest import wait_for

LOCAL = ("127.0.0.1", 50000)
YEARLY = "0 0 1 1 *"  # never ticks during a test: every run seen is a trigger


@pytest.fixture
def published(client, run_worker, monkeypatch):
    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    configure(
        cron={
            "yearly<report>": {
                "job": "tests.cron_jobs.record_tick",
                "schedule": YEARLY,
                "timezone": "Europe/Berlin",
                "args": ["web"],
            }
        }
    )
    run_worker(burst=False)
    wait_for(ops.cron_entries, message="the worker to publish its entry")


def _csrf(html: str) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', html)[1]


def test_cron_page_lists_entries_and_its_buttons_work(published):
    web = TestClient(create_app(), client=LOCAL)
    page = web.get("/cron")
    assert page.status_code == 200
    assert 'href="/cron"' in page.text and "aria-current" in page.text  # the nav link
    assert "yearly&lt;report&gt;" in page.text and "<report>" not in page.text
    assert YEARLY in page.text and "Europe/Berlin" in page.text
    assert re.search(r'<time datetime="[^"]+" title="[^"]+\(Europe/Berlin\)', page.text)
    token = _csrf(page.text)
    trigger = "/cron/yearly%3Creport%3E/trigger"
    assert web.post(trigger, data={"next": "/cron"}).status_code == 403  # no CSRF token
    done = web.post(trigger, data={"_csrf": token, "next": "/cron"}, follow_redirects=False)
    assert done.status_code == 303 and "flash=Enqueued" in done.headers["location"]
    run = wait_for(lambda: cron_jobs.runs("web"), message="the triggered run")[0]
    assert run["trigger"] == "manual"
    assert run["id"] in web.get("/cron").text  # the last run links to its job

    web.post("/cron/yearly%3Creport%3E/pause", data={"_csrf": token})
    assert ops.cron_entry("yearly<report>").paused
    assert "Resume" in web.get("/cron").text
    web.post("/cron/yearly%3Creport%3E/resume", data={"_csrf": token})
    assert not ops.cron_entry("yearly<report>").paused

    data = web.get("/api/cron").json()
    assert [(e["name"], e["schedule"], e["paused"]) for e in data] == [
        ("yearly<report>", YEARLY, False)
    ]
    missing = web.post("/cron/nope/trigger", data={"_csrf": token})
    assert "Not done: no cron entry" in missing.text


def test_read_only_shows_entries_without_buttons(published):
    web = TestClient(create_app(read_only=True), client=LOCAL)
    page = web.get("/cron")
    assert "yearly&lt;report&gt;" in page.text
    assert "Run now" not in page.text and "Pause" not in page.text
    assert web.post("/cron/yearly%3Creport%3E/trigger", data={}).status_code == 403
    assert cron_jobs.runs("web") == []
