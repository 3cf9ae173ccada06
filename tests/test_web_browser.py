"""The dashboard in a real browser: Playwright driving Debian's Chromium.

Run on a machine with /usr/bin/chromium (`apt-get install -y chromium`);
skipped elsewhere. Screenshots of every page (laptop and phone width) go to
test-artifacts/.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from steep import ops
from tests import jobs
from tests.conftest import ROOT, wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium"),
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _burst(run_worker) -> None:
    # Playwright's sync API owns this thread's event loop: run the worker beside it
    thread = threading.Thread(target=run_worker)
    thread.start()
    thread.join(30)


def _shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_click_through_every_page_and_steer_jobs(dashboard, browser, run_worker):
    from playwright.sync_api import expect

    # something in every state: dead, scheduled, retrying-free, queued with hostile text
    for i in range(2):
        jobs.always_fails.options(retries=0).enqueue(f"import-{i}")
    _burst(run_worker)
    jobs.add.enqueue_in(900, 1, 2)
    hostile = jobs.add.options(queue="low").enqueue("<script>alert('x')</script>", 1)
    worker = run_worker(burst=False)
    for _ in range(5):
        jobs.add.enqueue(1, 1)
    wait_for(lambda: ops.queue("default").size == 0, message="the quick jobs to run")

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.type), d.accept()))

    page.goto(dashboard + "/")
    expect(page.locator("#counters")).to_contain_text("processed")
    expect(page.locator("#live-chart canvas")).to_have_count(1)
    _shoot(page, "overview")
    for label, name in [
        ("Queues", "queues"),
        ("Workers", "workers"),
        ("Scheduled", "scheduled"),
        ("Retries", "retries"),
        ("Dead", "dead"),
        ("Metrics", "metrics"),
        ("Cron", "cron"),
        ("Limits", "limits"),
        ("Batches", "batches"),
    ]:
        page.click(f"header nav >> text={label}")
        expect(page.locator("h1")).to_be_visible()
        _shoot(page, name)
    page.goto(dashboard + "/queues/default?state=dead")
    _shoot(page, "queue")

    # the hostile argument is shown as text and never runs
    page.goto(f"{dashboard}/jobs/low/{hostile.id}")
    expect(page.locator("textarea")).to_have_value(
        '{\n  "args": [\n    "<script>alert(\'x\')</script>",\n    1\n  ],\n  "kwargs": {}\n}'
    )
    page.goto(f"{dashboard}/queues/low")
    expect(page.locator("td.args").first).to_contain_text("<script>alert('x')</script>")
    assert "alert" not in alerts

    # retry a dead job from its page
    page.goto(dashboard + "/dead")
    page.locator("a.jobname").first.click()
    expect(page.locator(".state")).to_have_text("dead")
    _shoot(page, "job-dead")
    dead_id = page.url.rsplit("/", 1)[-1]
    died = ops.get_job("default", dead_id).died_at
    page.click("text=Retry now")
    expect(page.locator(".flash")).to_contain_text("Queued the job")
    wait_for(
        lambda: (ops.get_job("default", dead_id).died_at or 0) > died,
        message="the retried job to run (and fail) again",
    )

    # pause, edit a pending job's arguments, resume: the worker runs the edited job
    page.goto(dashboard + "/queues")
    page.locator("tr", has_text="default").locator("text=Pause").click()
    expect(page.locator(".flash")).to_contain_text("Paused default")
    pending = jobs.add.enqueue(1, 2)
    page.goto(f"{dashboard}/jobs/default/{pending.id}")
    page.fill("textarea", '{"args": [40, 2]}')
    _shoot(page, "job-edit")
    page.click("text=Save")
    expect(page.locator(".flash")).to_contain_text("Saved")
    expect(page.locator("textarea")).to_contain_text("40")
    page.goto(dashboard + "/queues")
    page.locator("tr", has_text="default").locator("text=Resume").click()
    assert pending.result(timeout=10) == 42

    # cancel a running job from the workers page
    sleeper = jobs.sleepy.enqueue(30)
    wait_for(lambda: ops.running_jobs(), message="the sleeper to run")
    page.goto(dashboard + "/workers")
    row = page.locator("#running tr", has_text=sleeper.id)
    expect(row).to_be_visible(timeout=5000)
    _shoot(page, "workers-running")
    row.locator("text=Cancel").click()
    expect(page.locator(".flash")).to_contain_text("cancel")
    info = wait_for(
        lambda: (j := ops.get_job("default", sleeper.id)) and j.state == "dead" and j,
        message="the cancelled job in the dead set",
    )
    assert info.error["type"] == "steep.Cancelled"
    assert "confirm" in alerts and "alert" not in alerts

    # the running table and counters update without a reload
    expect(page.locator("#running")).to_contain_text("Nothing is running", timeout=5000)
    worker.threadsafe(worker.request_stop)

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    for path, name in [("/", "overview"), ("/dead", "dead"), (f"/jobs/low/{hostile.id}", "job")]:
        phone.goto(dashboard + path)
        _shoot(phone, f"phone-{name}")
    dark = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    dark.goto(dashboard + "/")
    _shoot(dark, "overview-dark")
    dark.goto(dashboard + "/dead")
    _shoot(dark, "dead-dark")
    assert Path(ARTIFACTS / "overview.png").exists()
