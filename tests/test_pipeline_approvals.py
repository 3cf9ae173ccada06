"""Approvals and one deploy at a time, with real app processes answering real HTTP: a
production deploy waits for a person without holding a worker, is approved (once) or
rejected from the command line or expires; a newer deploy waiting behind a running one
takes the place of an older one that waited."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steep.pipeline import approvals, deploys, start_run
from steep.pipeline.deploy_step import Refused
from tests.conftest import ROOT, free_port, holds_for, wait_for
from tests.pipeline_fixtures import definition
from tests.test_pipeline_cli import steep
from tests.test_pipeline_deploy import HERE, _answer, _environment


class Shop:
    """The sample app with staging (branch `staging`) and production (branch `main`,
    requires staging, approval), each a real app process once deployed."""

    def __init__(self, ci, root: Path) -> None:
        self.ci = ci
        self.staging_port, self.prod_port = free_port(), free_port()
        self.staging, self.prod = root / "srv" / "staging", root / "srv" / "production"

    def files(self, version, timeout=None, prod=None, staging=None):
        top = {"timeout": timeout} if timeout else {}
        text = definition([{"name": "tests", "run": "python3 -c 'import app'"}], **top)
        text += _environment(
            "staging", "staging", self.staging_port, self.staging, **(staging or {})
        )
        text += _environment(
            "production",
            "main",
            self.prod_port,
            self.prod,
            requires="staging",
            approval=True,
            **(prod or {}),
        )
        return {
            "steep.toml": text,
            "app.py": (HERE / "deploy_app.py").read_text(),
            "restart.sh": (HERE / "deploy_restart.sh").read_text(),
            "VERSION": f"{version}\n",
        }

    def staged(self, version=1, **more):
        """Commit `version` to staging and main, and deploy it to staging."""
        self.ci.repo.commit(self.files(version, **more), branch="staging")
        sha = self.ci.repo.push("staging")
        self.ci.repo.push("main")
        run = self.ci.wait(start_run("shop", "staging", trigger="manual", sha=sha)[0], timeout=90)
        assert run.state == "passed", (run.reason, [(s.name, s.reason) for s in run.steps])
        return sha

    def stop(self) -> None:
        for srv in (self.staging, self.prod):
            pidfile = srv / "shared" / "app.pid"
            if pidfile.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pidfile.read_text()), signal.SIGTERM)


@pytest.fixture
def shop(ci, tmp_path):
    handle = Shop(ci, tmp_path)
    yield handle
    handle.stop()


def _waiting(ci, run_id, step="deploy-production", timeout=60):
    """The step once it waits for approval."""

    def waits():
        run = ci.run(run_id)
        record = run.step(step) if run else None
        deploy = next((d for d in _production() if d.run_id == run_id), None)
        if deploy is None or deploy.waiting_for != "approval":
            return None  # (the step's record says it waits first, then the deploy's)
        return record if record is not None and record.state == "waiting" else None

    return wait_for(waits, timeout=timeout, message=f"{step} of {run_id} to wait for approval")


def _production():
    return deploys.history("shop", "production")


def test_production_waits_for_approval_then_deploys_once_with_who_and_when(ci, shop):
    from steep.pipeline.jobs import _description

    ci.worker()
    shop.staged(timeout=10)
    run_id = start_run("shop", "main", trigger="manual")[0]
    step = _waiting(ci, run_id)
    deploy = _production()[0]
    assert (deploy.state, deploy.waiting_for) == ("waiting", "approval")
    command = f"steep pipeline approve shop {deploy.id}"
    assert step.reason == f"production waits for approval: {command}"
    run = ci.run(run_id)
    assert run.state == "running" and _description(run) == step.reason
    assert deploy.expires_at == pytest.approx(deploy.waiting_since + 7 * 86400)
    # waiting for a person does not count against the run's 12 s: nothing deploys, the
    # run's deadline passes, the run still waits
    started = run.started

    def still_waiting():
        return ci.run(run_id).state == "running" and _production()[0].state == "waiting"

    # (the deadline job runs 5 s after the timeout: DEADLINE_SLACK)
    holds_for(still_waiting, max(started + 16.5 - time.time(), 0.5), message="the wait")
    assert _answer(shop.prod_port) is None and not (shop.prod / "current").exists()
    # two approvals at once (a double click, a redelivery): one wins, one deploy
    env = {
        **os.environ,
        "STEEP_REDIS_URL": ci.server.url,
        "STEEP_CONFIG": str(ci.config_path),
        "PYTHONPATH": str(ROOT / "src"),
    }
    both = [
        subprocess.Popen(
            [sys.executable, "-m", "steep", "pipeline", "approve", "shop", deploy.id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    answers = [(p.wait(60), *p.communicate()) for p in both]
    codes = sorted(code for code, _, _ in answers)
    assert codes == [0, 2], answers
    said = " ".join(out + err for _, out, err in answers)
    assert f"{deploy.id} approved by {getpass.getuser()}" in said
    assert f"deploy {deploy.id} was approved by {getpass.getuser()} at" in said
    run = ci.wait(run_id, timeout=90)
    assert run.state == "passed", (run.reason, [(s.name, s.reason) for s in run.steps])
    assert _answer(shop.prod_port) == "Shop v1"
    done = _production()
    assert len(done) == 1 and done[0].state == "succeeded"
    assert [p.name for p in done[0].phases].count("updating") == 1
    assert run.step("deploy-production").attempt == 1
    # who approved, and when: in the record, the JSON history and the table
    history = json.loads(steep(ci, "history", "shop", "production", "--json").stdout)["deploys"]
    (approval,) = history[0]["approvals"]
    assert approval["by"] == getpass.getuser() and approval["decision"] == "approved"
    assert done[0].waiting_since <= approval["at"] <= done[0].finished_at
    table = steep(ci, "history", "shop", "production").stdout
    assert f"approved by {getpass.getuser()}" in table
    # and afterwards: nothing waits, a third approval is refused with why
    with pytest.raises(Refused, match="was approved by"):
        approvals.approve("shop", deploy.id, "grace")
    assert approvals.waiting("shop") == []


def test_a_rejected_promotion_fails_its_run_with_the_reason(ci, shop):
    ci.worker()
    shop.staged()
    # a promotion by hand to an environment with approval waits too
    run_id = steep(ci, "promote", "shop", "staging", "production").stdout.strip()
    _waiting(ci, run_id)
    deploy = _production()[0]
    assert deploy.trigger == "promote"
    assert [d.id for d in approvals.waiting("shop")] == [deploy.id]
    out = steep(ci, "reject", "shop", deploy.id, "--reason", "not on a Friday", "--by", "grace")
    assert "rejected by grace: not on a Friday" in out.stdout
    run = ci.wait(run_id, timeout=60)
    assert run.state == "failed" and "rejected by grace: not on a Friday" in run.reason
    record = _production()[0]
    assert record.state == "failed" and record.phases == []
    assert [(a.by, a.decision, a.reason) for a in record.approvals] == [
        ("grace", "rejected", "not on a Friday")
    ]
    assert _answer(shop.prod_port) is None
    late = steep(ci, "approve", "shop", deploy.id, check=False)
    assert late.returncode == 2 and "was rejected by grace" in late.stderr
    unknown = steep(ci, "approve", "shop", "shop-production-99", check=False)
    assert unknown.returncode == 2 and "no deploy 'shop-production-99' of shop" in unknown.stderr


def test_an_approval_not_given_in_time_expires(ci, shop):
    ci.worker()
    shop.staged(prod={"approval_timeout": 1})
    run_id = start_run("shop", "main", trigger="manual")[0]
    run = ci.wait(run_id, timeout=60)
    assert run.state == "failed" and "not approved within 1 s" in run.reason
    record = _production()[0]
    assert record.state == "failed" and record.reason == "not approved within 1 s"
    assert record.approvals[0].decision == "expired"
    with pytest.raises(Refused, match="was not approved in time"):
        approvals.approve("shop", record.id, "grace")
    assert _answer(shop.prod_port) is None


def test_a_deploy_waiting_for_approval_holds_no_worker(ci, shop, recorder):
    receiver = recorder(then=200)
    ci.configure(notify_webhook=receiver.url)
    ci.worker("-c", "1")  # one job at a time: a waiting deploy holding it would stop all
    shop.staged()
    run_id = start_run("shop", "main", trigger="manual")[0]
    _waiting(ci, run_id)
    deploy = _production()[0]
    # meanwhile another run's steps and its staging deploy run on that one worker slot
    ci.repo.checkout("staging")
    ci.repo.commit({"VERSION": "2\n"})
    sha = ci.repo.push("staging")
    other = ci.wait(start_run("shop", "staging", trigger="manual", sha=sha)[0], timeout=90)
    assert other.state == "passed" and _answer(shop.staging_port) == "Shop v2"
    assert ci.run(run_id).step("deploy-production").state == "waiting"
    # the receivers were told what waits, and how to approve it
    message = wait_for(
        lambda: next((r["json"] for r in receiver.requests if r["json"]["event"] == "approval"), 0),
        message="the approval's notification",
    )
    assert message["deploy"] == deploy.id and message["env"] == "production"
    assert (
        message["reason"]
        == f"production waits for approval: steep pipeline approve shop {deploy.id}"
    )
    approvals.approve("shop", deploy.id, "grace")
    run = ci.wait(run_id, timeout=90)
    assert run.state == "passed" and _answer(shop.prod_port) == "Shop v1"
    assert _production()[0].approvals[0].by == "grace"


def test_a_newer_deploy_waiting_behind_a_running_one_supersedes_the_older(ci, shop, tmp_path):
    release = tmp_path / "release-a"
    marker = tmp_path / "a-in-hook"
    hook = f"touch {marker}; while [ ! -f {release} ]; do sleep 0.05; done"
    ci.repo.commit(shop.files(1, staging={"release": hook}), branch="staging")
    sha_a = ci.repo.push("staging")
    ci.worker()
    by_hand = {"trigger": "manual", "lane": "deploy:staging", "deploy_to": "staging"}
    run_a = start_run("shop", "staging", sha=sha_a, **by_hand)[0]  # steep pipeline deploy
    wait_for(marker.exists, timeout=60, message="deploy A in its release hook")
    staging = lambda: deploys.history("shop", "staging")  # noqa: E731

    ci.repo.commit(shop.files(2))
    sha_b = ci.repo.push("staging")
    run_b = start_run("shop", "staging", sha=sha_b, **by_hand)[0]
    wait_for(
        lambda: staging()[0].sha == sha_b and staging()[0].state == "waiting",
        timeout=60,
        message="deploy B to wait for A",
    )
    b = staging()[0]
    assert b.waiting_for == f"deploy {staging()[1].id}"

    ci.repo.commit(shop.files(3))
    sha_c = ci.repo.push("staging")
    run_c = start_run("shop", "staging", trigger="push", sha=sha_c)[0]  # an automatic one
    gone = ci.wait(run_b, timeout=60)
    step = gone.step("deploy-staging")
    assert step.state == "skipped"
    assert step.reason == (
        f"superseded by run {run_c}, deploy {staging()[0].id} of {sha_c[:12]} (push):"
        " this manual deploy by Ada Dev <ada@example.com> did not run"  # it says it gave way
    )
    b = deploys.get(b.id)
    assert b.state == "superseded" and b.phases == [] and b.superseded_by == staging()[0].id
    assert gone.state == "passed"  # its tests passed; its deploy gave way, nothing failed
    assert ci.run(run_a).state == "running" and _answer(shop.staging_port) is None

    release.touch()
    for run_id in (run_a, run_c):
        run = ci.wait(run_id, timeout=90)
        assert run.state == "passed", (run.reason, [(s.name, s.reason) for s in run.steps])
    assert _answer(shop.staging_port) == "Shop v3"
    a, c = deploys.get(staging()[2].id), staging()[0]
    assert (a.sha, a.state) == (sha_a, "succeeded")
    assert (c.sha, c.state, c.supersedes) == (sha_c, "succeeded", b.id)
    assert c.phases[0].at > a.finished_at  # after A, not beside it
    assert deploys.state("shop", "staging")["sha"] == sha_c
    assert sorted(p.name for p in (shop.staging / "releases").iterdir()) == sorted(
        [a.release, c.release]
    )
