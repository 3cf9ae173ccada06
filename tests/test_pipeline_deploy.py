"""Deploys with the `releases` strategy on this machine: a real app process answering
real HTTP, its releases switched atomically, checked, and rolled back when a check fails."""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.request
from pathlib import Path

import pytest

from steep.pipeline import deploys, start_run
from tests.conftest import free_port, wait_for
from tests.pipeline_fixtures import definition

HERE = Path(__file__).parent


def _environment(name, branch, port, path, **more):
    lines = [f"[pipeline.environments.{name}]"]
    values = {
        "branch": branch,
        "url": f"http://127.0.0.1:{port}",
        "strategy": "releases",
        "path": str(path),
        "restart": "sh restart.sh",
        "health": "/health",
        "env": {"PORT": str(port)},
        **more,
    }
    from tests.pipeline_fixtures import toml_value

    lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    lines += [f"[[pipeline.environments.{name}.checks]]", 'http = "/"', 'expect_text = "Shop v"']
    return "\n".join(lines) + "\n"


def _answer(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


@pytest.fixture
def shop(ci, tmp_path):
    """The sample app's repository with a staging environment; its app stopped after."""
    port = free_port()
    srv = tmp_path / "srv" / "staging"

    def files(version, **extra):
        text = definition([{"name": "tests", "run": "python3 -c 'import app'"}])
        text += _environment("staging", "staging", port, srv, **extra.pop("env_more", {}))
        return {
            "steep.toml": text,
            "app.py": (HERE / "deploy_app.py").read_text(),
            "restart.sh": (HERE / "deploy_restart.sh").read_text(),
            "VERSION": f"{version}\n",
            **extra,
        }

    yield port, srv, files
    pidfile = srv / "shared" / "app.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def _deploy(ci, ref="staging"):
    run = ci.wait(start_run("shop", ref, trigger="manual")[0], timeout=90)
    return run, deploys.history("shop", "staging")


def test_a_green_branch_deploys_checks_and_keeps_its_releases(ci, shop):
    port, srv, files = shop
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run, history = _deploy(ci)
    assert run.state == "passed", (run.reason, [(s.name, s.state, s.reason) for s in run.steps])
    assert run.stages == [["tests"], ["deploy-staging"]]
    assert _answer(port) == "Shop v1"
    first = history[0]
    assert first.state == "succeeded" and first.sha == run.meta.sha and first.previous is None
    assert [p.name for p in first.phases] == [
        "starting",
        "updating",
        "linking",
        "publishing",
        "restarting",
        "finished",
    ]
    assert [c.passed for c in first.checks] == [True, True]
    ci.repo.commit(files(2))
    ci.repo.push("staging")
    run, history = _deploy(ci)
    assert run.state == "passed" and _answer(port) == "Shop v2"
    second = history[0]
    assert second.previous == first.release
    current = os.readlink(srv / "current")
    assert current == f"releases/{second.release}"
    live = deploys.state("shop", "staging")
    assert (live["sha"], live["release"], live["state"]) == (
        run.meta.sha,
        second.release,
        "succeeded",
    )
    assert sorted(p.name for p in (srv / "releases").iterdir()) == sorted(
        [first.release, second.release]
    )


def test_a_failing_health_check_rolls_back_to_the_previous_release(ci, shop):
    port, srv, files = shop
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    good, _ = _deploy(ci)
    assert good.state == "passed" and _answer(port) == "Shop v1"
    ci.repo.commit(files(2, BROKEN="yes", env_more={"health_timeout": 2}))
    ci.repo.push("staging")
    bad, history = _deploy(ci)
    assert bad.state == "failed"
    deploy = history[0]
    assert deploy.state == "rolled_back" and deploy.rolled_back_to == history[1].release
    assert "rolled back to" in bad.step("deploy-staging").reason
    wait_for(lambda: _answer(port) == "Shop v1", message="the old release answering")
    assert os.readlink(srv / "current") == f"releases/{history[1].release}"
    live = deploys.state("shop", "staging")
    assert (live["sha"], live["state"]) == (good.meta.sha, "rolled_back")


def test_a_failing_release_hook_switches_nothing(ci, shop):
    port, srv, files = shop
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    assert _deploy(ci)[0].state == "passed"
    before = os.readlink(srv / "current")
    ci.repo.commit(files(2, env_more={"release": "echo migrating; exit 4"}))
    ci.repo.push("staging")
    run, history = _deploy(ci)
    assert run.state == "failed" and history[0].state == "failed"
    assert "the release command failed (exit code 4); nothing was switched" in history[0].reason
    assert os.readlink(srv / "current") == before and _answer(port) == "Shop v1"


def test_production_refuses_a_tree_that_never_passed_staging(ci, shop, tmp_path):
    _, _, files = shop
    prod_port = free_port()
    layout = files(1)
    layout["steep.toml"] += _environment(
        "production", "main", prod_port, tmp_path / "srv" / "production", requires="staging"
    )
    ci.repo.commit(layout, branch="main")
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(start_run("shop", "main", trigger="manual")[0], timeout=90)
    assert run.state == "failed"
    reason = run.step("deploy-production").reason
    assert "never passed staging's checks" in reason and "it has run nothing yet" in reason
    assert _answer(prod_port) is None
    # the same tree on staging passes there; then main, with that tree, is promoted as is
    ci.repo.push("staging")
    staged = ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90)
    assert staged.state == "passed"
    again = ci.wait(start_run("shop", "main", trigger="manual")[0], timeout=90)
    assert again.state == "passed", again.step("deploy-production").reason
    assert _answer(prod_port) == "Shop v1"
    pid = tmp_path / "srv" / "production" / "shared" / "app.pid"
    os.kill(int(pid.read_text()), signal.SIGTERM)


def test_a_deploy_whose_worker_is_killed_resumes_from_its_record(ci, shop, tmp_path):
    port, srv, files = shop
    marker = tmp_path / "hook-ran"
    hook = f"echo x >> {marker}; if [ $(wc -l < {marker}) -lt 2 ]; then sleep 60; fi"
    ci.repo.commit(files(1, env_more={"release": hook}), branch="staging")
    ci.repo.push("staging")
    worker = ci.worker()
    run_id = start_run("shop", "staging", trigger="manual")[0]

    def in_hook():
        history = deploys.history("shop", "staging")
        return history and history[0].done("linking") and marker.exists()

    wait_for(in_hook, timeout=60, message="the deploy's release hook to run")
    worker.kill_tree()
    assert not (srv / "current").exists()  # killed before the switch: still on no release
    ci.worker()
    run = ci.wait(run_id, timeout=90)
    assert run.state == "passed", run.reason
    deploy = deploys.history("shop", "staging")[0]
    assert deploy.state == "succeeded"
    assert run.step("deploy-staging").attempt == 2
    names = [p.name for p in deploy.phases]
    assert names.count("updating") == 1  # not unpacked twice: resumed after linking
    assert names[-3:] == ["publishing", "restarting", "finished"]
    assert _answer(port) == "Shop v1"


def test_envs_history_and_a_lock_from_the_command_line(ci, shop):
    import json

    from tests.test_pipeline_cli import steep

    port, _, files = shop
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run, _ = _deploy(ci)
    assert run.state == "passed"
    envs = json.loads(steep(ci, "envs", "shop", "--json").stdout)["environments"]
    staging = envs[0]
    assert (staging["name"], staging["branch"], staging["sha"]) == (
        "staging",
        "staging",
        run.meta.sha,
    )
    assert staging["tree"] and staging["release"] and staging["deployed_at"]
    assert staging["state"] == "succeeded"
    history = json.loads(steep(ci, "history", "shop", "staging", "--json").stdout)["deploys"]
    first = history[0]
    assert {"id", "sha", "tree", "state", "checks", "trigger", "started_at", "finished_at"} <= set(
        first
    )
    assert first["state"] == "succeeded" and first["trigger"] == "manual"
    assert (
        "locked: freeze for the launch"
        in steep(ci, "lock", "shop", "staging", "--reason", "freeze for the launch").stdout
    )
    ci.repo.commit(files(2))
    ci.repo.push("staging")
    locked, _ = _deploy(ci)
    assert locked.state == "failed"
    assert "staging is locked by" in locked.step("deploy-staging").reason
    assert "freeze for the launch" in locked.step("deploy-staging").reason
    assert _answer(port) == "Shop v1"
    assert "unlocked" in steep(ci, "unlock", "shop", "staging").stdout
    assert _deploy(ci)[0].state == "passed" and _answer(port) == "Shop v2"


def test_rollback_and_promote_from_the_command_line(ci, shop, tmp_path):
    from tests.test_pipeline_cli import steep

    port, _, files = shop
    prod_port = free_port()
    prod = tmp_path / "srv" / "production"
    layout = files(1)
    layout["steep.toml"] += _environment("production", "main", prod_port, prod, requires="staging")
    ci.repo.commit(layout, branch="staging")
    ci.repo.push("staging")
    ci.worker()
    first, _ = _deploy(ci)
    ci.repo.commit({"VERSION": "2\n"})
    ci.repo.push("staging")
    second, _ = _deploy(ci)
    assert first.state == second.state == "passed" and _answer(port) == "Shop v2"
    out = steep(ci, "rollback", "shop", "staging").stdout
    v1 = deploys.history("shop", "staging")[2]
    assert f"rolled back to {v1.release}" in out
    assert _answer(port) == "Shop v1"
    rolled = deploys.history("shop", "staging")[0]
    assert (rolled.trigger, rolled.state, rolled.sha) == ("rollback", "succeeded", first.meta.sha)
    assert deploys.state("shop", "staging")["sha"] == first.meta.sha
    missing = steep(ci, "rollback", "shop", "staging", "--release", "nope", check=False)
    assert missing.returncode == 2 and "no release nope" in missing.stderr
    # production takes what runs in staging, as is: no steps, the same artifact
    run_id = steep(ci, "promote", "shop", "staging", "production").stdout.strip()
    promoted = ci.wait(run_id, timeout=90)
    assert promoted.state == "passed", promoted.reason
    assert promoted.stages == [["deploy-production"]] and promoted.meta.sha == first.meta.sha
    assert _answer(prod_port) == "Shop v1"
    top = deploys.history("shop", "production")[0]
    assert top.trigger == "promote" and top.digest == v1.digest
    os.kill(int((prod / "shared" / "app.pid").read_text()), signal.SIGTERM)
