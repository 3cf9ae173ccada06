"""The Environments page in a real browser (Playwright driving Debian's Chromium), after
real deploys of the sample app: what runs in staging and what waits for production, a
lock with its reason, unlock, a promotion that production's card shows as it lands,
and a rollback; a commit message's markup shown as text."""

from __future__ import annotations

import os

import pytest

from steep.pipeline import deploys
from tests.conftest import wait_for
from tests.test_pipeline_environments_web import _staged
from tests.test_pipeline_environments_web import shop2 as shop2  # the same app fixture
from tests.test_web_browser import ARTIFACTS, CHROMIUM
from tests.test_web_browser import browser as browser  # the same Chromium fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium"),
]
EVIL = "<img src=x onerror=alert(1)> Raise the prices"


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations
    return page


def test_lock_unlock_promote_and_roll_back_on_the_environments_page(ci, ci_web, shop2, page):
    from playwright.sync_api import expect

    _, _, files = shop2
    _, sha = _staged(ci, files, message=EVIL)
    url = f"{ci_web}/pipeline/projects/shop/environments"
    page.goto(f"{ci_web}/pipeline/projects/shop")
    page.get_by_role("link", name="Environments").click()
    expect(page).to_have_url(url)
    staging = page.locator('section.envcard[data-env="staging"]')
    production = page.locator('section.envcard[data-env="production"]')
    between = page.locator('section[data-between="staging-production"]')
    expect(staging.locator(".sha")).to_have_text(sha[:10])
    expect(staging.locator(".message")).to_have_text(EVIL)  # text, not markup
    assert page.locator("img[src=x]").count() == 0
    expect(between.locator(f'tr[data-sha="{sha}"]')).to_contain_text("Raise the prices")
    expect(production).to_contain_text("nothing deployed yet")
    page.screenshot(path=str(ARTIFACTS / "pipeline-environments.png"), full_page=True)
    # lock with a reason, then unlock
    staging.get_by_label("why staging is locked").fill("freeze for the launch")
    staging.get_by_role("button", name="Lock").click()
    expect(page.locator("div.flash[role=status]")).to_have_text(
        "staging locked: freeze for the launch"
    )
    expect(staging.locator(".lock-reason")).to_have_text("freeze for the launch")
    expect(staging.locator(".lock")).to_contain_text("Locked by dashboard")
    assert deploys.state("shop", "staging")["lock_reason"] == "freeze for the launch"
    staging.get_by_role("button", name="Unlock").click()
    expect(page.locator("div.flash[role=status]")).to_have_text("staging unlocked.")
    expect(staging.locator(".lock")).to_have_count(0)
    # promote: production's card shows staging's commit once its deploy is done
    between.get_by_role("button", name="Promote staging → production").click()
    expect(page.locator("div.flash[role=status]")).to_contain_text("Promoting staging's")
    expect(production.locator(".sha")).to_have_text(sha[:10], timeout=90_000)
    expect(production.locator(".state").first).to_have_text("succeeded")
    expect(between).to_contain_text("production runs what staging runs")
    # the promotion's run page shows its deploy stage: the deploy, its phases and checks
    promoted = deploys.history("shop", "production")[0]
    page.goto(f"{ci_web}/pipeline/runs/{promoted.run_id}")
    stage = page.locator('[data-deploy-step="deploy-production"]')
    expect(stage.get_by_role("link", name=promoted.id)).to_be_visible()
    expect(stage.locator('li[data-phase="publishing"]')).to_be_visible()
    expect(stage.locator('tr[data-check="GET /"]')).to_contain_text("passed")
    page.screenshot(path=str(ARTIFACTS / "pipeline-run-deploy.png"), full_page=True)
    stage.get_by_role("link", name=promoted.id).click()
    expect(page.locator("#deploy-state")).to_have_text("succeeded")
    expect(page.locator("ol.timeline li").last).to_contain_text("finished")
    # a second release on staging, then roll back to the first with the button
    first = deploys.history("shop", "staging")[0]
    _, second = _staged(ci, files, version=2, message="Ship v2")
    page.goto(url)
    expect(staging.locator(".sha")).to_have_text(second[:10])
    expect(between.locator("table.pending")).to_contain_text("Ship v2")
    staging.get_by_role("button", name="Roll back", exact=True).click()
    expect(page.locator("div.flash[role=status]")).to_contain_text(
        f"staging rolled back to {first.release}", timeout=40_000
    )
    expect(staging.locator(".release")).to_have_text(first.release)
    expect(staging.locator(".sha")).to_have_text(sha[:10])
    top = deploys.history("shop", "staging")[0]
    expect(staging.locator(f'tr[data-deploy="{top.id}"]')).to_contain_text("rollback")
    wait_for(lambda: deploys.state("shop", "staging")["release"] == first.release)


def test_approve_and_reject_a_waiting_deploy(ci, ci_web, shop2, page):
    """Production with `approval = true`: a promotion waits until approved on the page;
    a rejected one never runs."""
    from playwright.sync_api import expect

    _, _, files = shop2

    def approved(version: int) -> dict[str, str]:
        layout = files(version)
        layout["steep.toml"] = layout["steep.toml"].replace(
            'requires = "staging"', 'requires = "staging"\napproval = true'
        )
        return layout

    _, sha = _staged(ci, approved, message="Ship v1")
    url = f"{ci_web}/pipeline/projects/shop/environments"
    page.goto(url)
    production = page.locator('section.envcard[data-env="production"]')
    between = page.locator('section[data-between="staging-production"]')
    between.get_by_role("button", name="Promote staging → production").click()
    wait_for(
        lambda: any(d.state == "waiting" for d in deploys.history("shop", "production")),
        timeout=60,
        message="the production deploy to wait for an approval",
    )
    page.goto(url)
    production.get_by_role("button", name="Approve").click()
    expect(page.locator("div.flash[role=status]")).to_contain_text("approved")
    expect(production.locator(".sha")).to_have_text(sha[:10], timeout=90_000)
    _, second = _staged(ci, approved, version=2, message="Ship v2")
    page.goto(url)
    between.get_by_role("button", name="Promote staging → production").click()
    wait_for(
        lambda: deploys.history("shop", "production")[0].state == "waiting",
        timeout=60,
        message="the second production deploy to wait",
    )
    page.goto(url)
    production.get_by_label("why it is rejected").fill("not during the sale")
    production.get_by_role("button", name="Reject").click()
    expect(page.locator("div.flash[role=status]")).to_contain_text("rejected")
    expect(production.locator(".sha")).to_have_text(sha[:10])
    assert deploys.state("shop", "production")["sha"] == sha != second
