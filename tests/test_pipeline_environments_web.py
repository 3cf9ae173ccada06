"""The dashboard's Environments page, deploy page and deploy stages over HTTP (Starlette's
test client on the dashboard with the pipeline's pages), after real deploys: a real git
repository, real build workers, the sample app answering on a real port."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from steep.pipeline import deploys, start_run
from tests.conftest import free_port
from tests.pipeline_fixtures import definition
from tests.test_pipeline_deploy import _answer, _environment

HERE = Path(__file__).parent
LOCAL = ("127.0.0.1", 50000)
SECRET = "s3cr3t-value-never-shown"
EVIL = "<script>alert(1)</script> Raise the prices"


@pytest.fixture
def shop2(ci, tmp_path):
    """The sample app with staging and production (which requires staging): ports,
    paths and the files of a version; both apps stopped after."""
    ports = {"staging": free_port(), "production": free_port()}
    paths = {name: tmp_path / "srv" / name for name in ports}

    def files(version: int) -> dict[str, str]:
        text = definition([{"name": "tests", "run": "python3 -c 'import app'"}])
        text += _environment(
            "staging",
            "staging",
            ports["staging"],
            paths["staging"],
            env={"PORT": str(ports["staging"]), "SHOP_SECRET": SECRET},
        )
        text += _environment(
            "production", "main", ports["production"], paths["production"], requires="staging"
        )
        return {
            "steep.toml": text,
            "app.py": (HERE / "deploy_app.py").read_text(),
            "restart.sh": (HERE / "deploy_restart.sh").read_text(),
            "VERSION": f"{version}\n",
        }

    yield ports, paths, files
    for path in paths.values():
        pidfile = path / "shared" / "app.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)


@pytest.fixture
def web(ci, monkeypatch):
    from steep.pipeline.web import extension
    from steep.web import create_app

    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    return TestClient(create_app(extensions=[extension()]), client=LOCAL)


def _staged(ci, files, version=1, message="change"):
    ci.repo.commit(files(version), message=message, branch="staging")
    sha = ci.repo.push("staging")
    if not ci.workers:
        ci.worker()
    run = ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90)
    assert run.state == "passed", (run.reason, [(s.name, s.reason) for s in run.steps])
    return run, sha


def _csrf(html: str) -> str:
    return re.search(r'"X-CSRF-Token": "([^"]+)"', html)[1]  # on every page


def _post(web, path, **form):
    page = web.get("/pipeline/projects/shop/environments")
    form = {"_csrf": _csrf(page.text), "next": "/pipeline/projects/shop/environments", **form}
    return web.post(path, data=form)


def _flash(response) -> str:
    found = re.search(r'<div class="flash[^"]*" role="status">([^<]*)</div>', response.text)
    return found[1] if found else ""


ENV = "/pipeline/projects/shop/environments"


def test_the_page_shows_what_runs_where_and_the_commits_waiting(ci, shop2, web):
    ports, _, files = shop2
    first, sha = _staged(ci, files, message=EVIL)
    page = web.get(ENV)
    assert page.status_code == 200
    html = page.text
    # staging before production (production requires it), the commits between them
    assert html.index('data-env="staging"') < html.index('data-between="staging-production"')
    assert html.index('data-between="staging-production"') < html.index('data-env="production"')
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Raise the prices" in html
    assert sha[:10] in html and "Ada Dev" in html
    assert f'href="http://127.0.0.1:{ports["staging"]}"' in html
    assert "nothing runs in production yet: every commit of staging waits" in html
    assert "Roll back" not in html  # one release: nothing to roll back to
    assert "Promote staging → production" in html
    assert "SHOP_SECRET" in html and SECRET not in html  # names of env, never values
    api = web.get("/api/pipeline/projects/shop/environments").json()
    assert SECRET not in web.get("/api/pipeline/projects/shop/environments").text
    staging, production = api["environments"]
    assert (staging["name"], production["name"]) == ("staging", "production")
    assert staging["sha"] == sha and staging["commit"]["message"] == EVIL
    assert staging["commit"]["author"] == "Ada Dev"
    assert staging["release"] and staging["deployed_at"] and staging["lock"] is None
    assert staging["deployed_by"].startswith("Ada Dev") and staging["deployed_trigger"] == "manual"
    last = staging["last_deploy"]
    assert last["state"] == "succeeded" and last["run_id"] == first.id
    assert [c["passed"] for c in last["checks"]] == [True, True]
    assert staging["definition"]["env_names"] == ["PORT", "SHOP_SECRET"]
    assert production["sha"] is None and production["requires"] == "staging"
    assert production["pending"]["commits"][0]["sha"] == sha
    # a second commit on staging: it waits too, newest first
    _staged(ci, files, version=2, message="Ship v2")
    pending = web.get("/api/pipeline/projects/shop/environments").json()["environments"][1]
    assert [c["message"] for c in pending["pending"]["commits"][:2]] == ["Ship v2", EVIL]
    assert web.get("/pipeline/projects/nope/environments").status_code == 200  # "not found"
    assert web.get("/api/pipeline/projects/nope/environments").status_code == 404
    links = web.get("/pipeline/projects/shop").text + web.get("/pipeline").text
    assert links.count(f'href="{ENV}"') == 2


def test_lock_unlock_promote_and_roll_back_with_the_buttons(ci, shop2, web):
    ports, _, files = shop2
    _staged(ci, files)
    refused = web.post(f"{ENV}/staging/lock", data={"reason": "no token"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert "locked_by" not in deploys.state("shop", "staging")
    done = _post(web, f"{ENV}/staging/lock", reason="freeze <b>for</b> the launch")
    assert _flash(done) == "staging locked: freeze &lt;b&gt;for&lt;/b&gt; the launch"
    assert deploys.state("shop", "staging")["locked_by"] == "dashboard"
    assert "freeze &lt;b&gt;for&lt;/b&gt; the launch" in done.text and "<b>for" not in done.text
    assert "Locked by <strong>dashboard</strong>" in done.text
    assert "Not done: say why" in _flash(_post(web, f"{ENV}/production/lock", reason=" "))
    assert "staging unlocked." in _flash(_post(web, f"{ENV}/staging/unlock"))
    assert "locked_by" not in deploys.state("shop", "staging")
    # promote: production takes what staging runs
    promoted = _flash(_post(web, f"{ENV}/production/promote", source="staging"))
    run_id = re.search(r"run (\S+)\.$", promoted)[1]
    assert ci.wait(run_id, timeout=90).state == "passed"
    assert _answer(ports["production"]) == "Shop v1"
    api = web.get("/api/pipeline/projects/shop/environments").json()["environments"]
    assert api[1]["sha"] == api[0]["sha"] and api[1]["deployed_trigger"] == "promote"
    assert api[1]["pending"]["note"] == "production runs what staging runs"
    assert "production runs what staging runs" in web.get(ENV).text
    # the run page shows the deploy stage: its deploy, phases and checks
    run_page = web.get(f"/pipeline/runs/{run_id}").text
    top = deploys.history("shop", "production")[0]
    assert f'href="/pipeline/deploys/{top.id}"' in run_page
    assert 'data-phase="publishing"' in run_page and 'data-check="GET /"' in run_page
    # roll staging back: to the release before, then forward again with "roll back to this"
    _staged(ci, files, version=2)
    assert _answer(ports["staging"]) == "Shop v2"
    first, second = deploys.history("shop", "staging")[1], deploys.history("shop", "staging")[0]
    assert f'data-confirm="Roll staging back to {first.release}?"' in web.get(ENV).text
    back = _flash(_post(web, f"{ENV}/staging/rollback"))
    assert back.startswith(f"staging rolled back to {first.release}")
    assert _answer(ports["staging"]) == "Shop v1"
    html = web.get(ENV).text
    assert f'name="release" value="{second.release}"' in html  # offered: it is not current
    again = _flash(_post(web, f"{ENV}/staging/rollback", release=second.release))
    assert again.startswith(f"staging rolled back to {second.release}")
    assert _answer(ports["staging"]) == "Shop v2"
    rolled = deploys.history("shop", "staging")[0]
    assert (rolled.trigger, rolled.by, rolled.state) == ("rollback", "dashboard", "succeeded")
    missing = _flash(_post(web, f"{ENV}/staging/rollback", release="nope"))
    assert missing.startswith("Not done: not rolled back: no release nope")


def test_a_deploy_page_shows_its_phases_checks_and_run(ci, shop2, web):
    _, _, files = shop2
    run, _ = _staged(ci, files)
    deploy = deploys.history("shop", "staging")[0]
    page = web.get(f"/pipeline/deploys/{deploy.id}").text
    phases = re.findall(r'data-phase="([^"]+)"', page)
    assert phases == [p.name for p in deploy.phases] and phases[-1] == "finished"
    assert f'href="/pipeline/runs/{run.id}"' in page
    assert 'data-check="GET /"' in page and "passed" in page
    assert deploy.release in page and SECRET not in page
    data = web.get(f"/api/pipeline/deploys/{deploy.id}").json()
    assert data["id"] == deploy.id and "spec" not in data and SECRET not in str(data)
    assert "SHOP_SECRET" in data["env_names"]
    history = web.get(f"{ENV}/staging").text
    assert f'data-deploy="{deploy.id}"' in history
    assert "Steep holds no record of deploy nope" in web.get("/pipeline/deploys/nope").text


def test_refused_buttons_say_why_and_change_nothing(ci, shop2, web):
    _, _, files = shop2
    ci.repo.commit(files(1), branch="main")
    ci.repo.push("main")
    ci.worker()
    # main feeds production, which refuses a tree that never passed staging
    run = ci.wait(start_run("shop", "main", trigger="manual")[0], timeout=90)
    assert run.state == "failed"
    page = web.get(ENV).text  # nothing deployed: the environments as the run's plan names them
    assert page.count("nothing deployed yet") == 2
    assert page.index('data-env="staging"') < page.index('data-env="production"')
    assert "nothing runs in staging yet" in page
    nothing = _flash(_post(web, f"{ENV}/production/promote", source="staging"))
    assert nothing == "Not done: nothing runs in staging yet: deploy it first"
    never = _flash(_post(web, f"{ENV}/staging/rollback"))
    assert never.startswith("Not done: not rolled back: shop has never deployed to staging")
    assert deploys.history("shop", "production") == []


def test_the_dashboard_user_is_the_basic_username(ci, monkeypatch):
    import base64

    from steep.pipeline.web import extension
    from steep.web import create_app

    monkeypatch.delenv("STEEP_WEB_TOKEN", raising=False)
    app = create_app(username="ops", password="pw", extensions=[extension()])
    basic = base64.b64encode(b"ops:pw").decode()
    web = TestClient(app, headers={"Authorization": f"Basic {basic}"})
    response = _post(web, f"{ENV}/staging/lock", reason="a freeze")
    assert _flash(response) == "staging locked: a freeze"
    assert deploys.state("shop", "staging")["locked_by"] == "ops"
    assert "Locked by <strong>ops</strong>" in web.get(ENV).text


def test_the_history_pages_fifty_at_a_time(ci, web):
    deploys.set_state("shop", "staging", branch="staging")
    made = [
        deploys.new_deploy("shop", "staging", sha=f"{i:040x}", tree="t", digest="d", trigger="push")
        for i in range(55)
    ]
    newest_first = [d.id for d in deploys.history("shop", "staging", 100)]
    first = web.get(f"{ENV}/staging").text
    shown = re.findall(r'<tr data-deploy="([^"]+)"', first)
    assert shown == newest_first[:50] and 'href="?offset=50"' in first
    older = re.findall(r'<tr data-deploy="([^"]+)"', web.get(f"{ENV}/staging?offset=50").text)
    assert older == newest_first[50:] and sorted(shown + older) == sorted(d.id for d in made)
    card = web.get("/api/pipeline/projects/shop/environments").json()["environments"][0]
    assert len(card["history"]) == 10 and card["more_history"] is True


def test_a_read_only_dashboard_shows_no_button_and_refuses_them(ci, shop2, monkeypatch):
    from steep.pipeline.web import extension
    from steep.web import create_app

    _, _, files = shop2
    _staged(ci, files)
    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    web = TestClient(create_app(read_only=True, extensions=[extension()]), client=LOCAL)
    page = web.get(ENV).text
    assert "Promote staging" not in page and 'name="reason"' not in page
    assert "<form" not in page
    refused = _post(web, f"{ENV}/staging/lock", reason="no")
    assert refused.status_code == 403 and "locked_by" not in deploys.state("shop", "staging")
