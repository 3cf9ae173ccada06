"""The pipeline's pages in a real browser (Playwright driving Debian's Chromium): the
run page updates itself while the run goes on, its log streams in, the cancel button
works, and what a commit message holds is shown as text, never as markup."""

from __future__ import annotations

import os

import pytest

from steep.pipeline import start_run
from tests.pipeline_fixtures import definition
from tests.test_web_browser import ARTIFACTS, CHROMIUM
from tests.test_web_browser import browser as browser  # the same Chromium fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium"),
]


@pytest.fixture
def page(browser):
    return browser.new_page()


def test_a_run_page_streams_its_log_and_updates_live_then_cancels(ci, ci_web, page):
    from playwright.sync_api import expect

    script = "echo first line; sleep 1; echo '<b>second</b> line'; sleep 60"
    ci.repo.commit(
        {"steep.toml": definition([{"name": "slow", "run": script}])},
        message="<img src=x onerror=alert(1)> fix the cart",
    )
    ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    page.goto(f"{ci_web}/pipeline/runs/{run_id}")
    log = page.locator('details[data-step="slow"] pre.log')
    expect(page.locator('details[data-step="slow"][open]')).to_have_count(1)  # running: open
    expect(log).to_contain_text("first line", timeout=30_000)
    expect(log).to_contain_text("<b>second</b> line", timeout=30_000)  # text, not markup
    assert page.locator("pre.log b").count() == 0
    expect(page.locator('#run-steps tr[data-step="slow"] .state')).to_have_text("running")
    assert page.locator("img[src=x]").count() == 0
    expect(page.locator("dd", has_text="fix the cart")).to_contain_text("<img src=x")
    page.screenshot(path=str(ARTIFACTS / "pipeline-run.png"), full_page=True)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("div.flash[role=status]")).to_contain_text(
        f"Run {run_id} cancelled", timeout=15_000
    )
    expect(page.locator('#run-steps tr[data-step="slow"] .state')).to_have_text(
        "cancelled", timeout=30_000
    )
    expect(page.locator("#run-state .state")).to_have_text("cancelled")


def test_the_pipelines_page_and_the_overview_show_the_last_runs(ci, ci_web, page):
    from playwright.sync_api import expect

    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}])})
    ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    ci.wait(run_id)
    page.goto(f"{ci_web}/pipeline")
    expect(page.locator("#projects")).to_contain_text("shop")
    expect(page.locator("#projects a.lane")).to_contain_text("main passed")
    page.goto(f"{ci_web}/")
    expect(page.locator("#pipeline-latest")).to_contain_text(run_id)
    page.get_by_role("navigation").get_by_role("link", name="Pipelines").click()
    expect(page).to_have_url(f"{ci_web}/pipeline")
    page.goto(f"{ci_web}/pipeline/projects/shop")
    expect(page.locator("#runs")).to_contain_text(run_id)
    page.screenshot(path=str(ARTIFACTS / "pipeline-project.png"), full_page=True)
