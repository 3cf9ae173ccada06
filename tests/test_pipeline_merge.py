"""The merge gate (`steep pipeline merge`) against a real bare origin: the target moves to
exactly the commit tested, only when green; a red merge, a target moved meanwhile, a
conflict move nothing; the pushed commit deploys without being tested again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.request

from steep.pipeline import config as pipeline_config
from steep.pipeline import deploys, gate, list_runs
from steep.pipeline.poller import poll
from tests.conftest import free_port, wait_for
from tests.pipeline_fixtures import definition, git
from tests.test_pipeline_cli import steep
from tests.test_pipeline_deploy import _answer, _environment, shop  # noqa: F401

ADA = "Ada Dev <ada@example.com>"


def origin(ci, branch):
    return git("rev-parse", f"refs/heads/{branch}", cwd=ci.repo.origin)


def parents(ci, sha):
    return git("rev-list", "--parents", "-n", "1", sha, cwd=ci.repo.origin).split()[1:]


def settled(run_id, timeout=90.0):
    def done():
        status = gate.status(run_id)
        return status if status is not None and status.settled else None

    return wait_for(done, timeout=timeout, message=f"merge {run_id} to be settled")


def step_running(ci, run_id, name="tests"):
    def running():
        run = ci.run(run_id)
        record = run.step(name) if run else None
        return record is not None and record.state == "running"

    wait_for(running, timeout=60, message=f"step {name} of {run_id} to run")


def branch_from(ci, start, name, files, message="change"):
    git("checkout", "--quiet", "-B", name, start, cwd=ci.repo.work)
    ci.repo.commit(files, message)
    return ci.repo.push(name)


def test_a_green_merge_moves_staging_to_the_tested_commit_which_deploys_then_goes_to_production(
    ci,
    shop,  # noqa: F811
    tmp_path,
):
    port, _, files = shop
    prod_port = free_port()
    prod = tmp_path / "srv" / "production"
    layout = files(1)
    layout["steep.toml"] += _environment("production", "main", prod_port, prod, requires="staging")
    ci.repo.commit(layout, branch="main")
    ci.repo.push("main")
    base = ci.repo.push("staging")
    head = branch_from(ci, "main", "feature", {"VERSION": "2\n"}, "Raise the version")
    run_id = steep(
        ci, "merge", "shop", "feature", "--into", "staging", "--no-wait", "--author", ADA
    ).stdout.strip()
    project = pipeline_config.load().project("shop")
    assert poll(project) == []  # the poller's first look: it records the heads
    ci.worker()
    try:
        merged = settled(run_id)
        assert merged.state == "merged", merged.line
        sha = origin(ci, "staging")
        run = ci.run(run_id)
        assert sha == run.meta.sha == merged.sha and merged.base == base and merged.head == head
        assert parents(ci, sha) == [base, head]
        said = git("log", "-1", "--format=%an <%ae>|%cn|%s", sha, cwd=ci.repo.origin)
        assert said == f"{ADA}|steep|Merge branch 'feature' into staging"
        assert run.stages == [["tests"]]  # no deploy: the commit was on no branch yet
        assert merged.line.startswith(f"staging moved from {base[:12]} to {sha[:12]}")
        assert git("for-each-ref", "refs/steep", cwd=ci.repo.origin) == ""

        deployed = ci.wait(merged.target_run, timeout=90)
        assert deployed.state == "passed", deployed.reason
        assert (deployed.meta.sha, deployed.meta.lane) == (sha, "branch:staging")
        assert deployed.stages == [["tests"], ["deploy-staging"]]
        assert deployed.step("tests").reused_from == run_id  # not tested twice
        assert deployed.step("tests").attempt == 0
        assert _answer(port) == "Shop v2"
        staged = deploys.history("shop", "staging")[0]
        assert (staged.sha, staged.state, staged.trigger) == (sha, "succeeded", "merge")

        before = [r.id for r in list_runs("shop", limit=50)]
        assert poll(project) == []  # it sees staging moved: built already, by the merge
        assert [r.id for r in list_runs("shop", limit=50)] == before

        # staging into main: the same tree, which passed staging, goes to production
        promoted = settled(gate.request_merge("shop", "staging", "main", author=ADA))
        assert promoted.state == "merged", promoted.line
        assert origin(ci, "main") == promoted.sha and parents(ci, promoted.sha)[1] == sha
        production = ci.wait(promoted.target_run, timeout=90)
        assert production.state == "passed", production.reason
        assert _answer(prod_port) == "Shop v2"
        live = deploys.history("shop", "production")[0]
        assert (live.sha, live.tree) == (promoted.sha, staged.tree)
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((prod / "shared" / "app.pid").read_text()), signal.SIGTERM)


def test_a_red_merge_leaves_the_target_where_it_was(ci, ci_web):
    ci.repo.commit({"steep.toml": definition([{"name": "tests", "run": "test ! -f BROKEN"}])})
    ci.repo.push("main")
    base = ci.repo.push("staging")
    branch_from(ci, "main", "feature", {"BROKEN": "yes"})
    ci.worker()
    done = steep(ci, "merge", "shop", "feature", "--into", "staging", check=False, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert "  tests failed: run exited with code 1" in lines
    assert lines[-1] == (
        "staging not moved: the merge of feature failed: step 'tests' failed:"
        " run exited with code 1"
    )
    assert origin(ci, "staging") == base
    assert git("for-each-ref", "refs/steep", cwd=ci.repo.origin) == ""
    run_id = lines[0].split(":")[0]
    assert gate.status(run_id).target_run is None
    assert "merge of feature into staging" in steep(ci, "show", run_id).stdout
    with urllib.request.urlopen(f"{ci_web}/pipeline/runs/{run_id}", timeout=10) as page:
        assert "feature into staging" in page.read().decode()


def test_a_target_moved_while_the_merge_was_tested_is_refused_and_nothing_moves(ci, tmp_path):
    go = tmp_path / "go"
    steps = [{"name": "tests", "run": f"while [ ! -f {go} ]; do sleep 0.05; done"}]
    ci.repo.commit({"steep.toml": definition(steps, timeout=60)})
    ci.repo.push("main")
    base = ci.repo.push("staging")
    branch_from(ci, "main", "feature", {"feature.txt": "x\n"})
    ci.worker()
    run_id = gate.request_merge("shop", "feature", "staging", author=ADA)
    step_running(ci, run_id)
    moved = branch_from(ci, "main", "hotfix", {"hotfix.txt": "y\n"})
    ci.repo.push("staging")
    go.touch()
    refused = settled(run_id)
    assert refused.state == "refused"
    assert refused.line == (
        f"staging moved from {base[:12]} to {moved[:12]} while the merge was tested:"
        " run the merge again"
    )
    assert ci.run(run_id).state == "passed"  # green, but not what staging is now
    assert origin(ci, "staging") == moved and refused.target_run is None
    assert git("for-each-ref", "refs/steep", cwd=ci.repo.origin) == ""


def test_a_conflict_an_unknown_branch_or_a_merge_into_itself_is_one_clear_line(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "tests", "run": "true"}]), "cart.py": "a\n"})
    ci.repo.push("main")
    base = branch_from(ci, "main", "staging", {"cart.py": "staging\n"})
    branch_from(ci, "main", "feature", {"cart.py": "feature\n"})
    ci.worker()
    done = steep(ci, "merge", "shop", "feature", "--into", "staging", "--json", check=False)
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert (out["state"], out["run_state"]) == ("failed", "error")
    assert out["line"] == (
        "staging not moved: feature does not merge into staging: conflicts in cart.py"
    )
    unknown = steep(ci, "merge", "shop", "nope", "--into", "staging", check=False)
    assert unknown.returncode == 1
    assert f"staging not moved: no branch 'nope' on {ci.repo.origin}" in unknown.stdout
    merged = steep(ci, "merge", "shop", "main", "--into", "staging", check=False)
    assert merged.returncode == 1
    assert "staging not moved: nothing to merge: main (" in merged.stdout
    assert ") is in staging already" in merged.stdout
    itself = steep(ci, "merge", "shop", "staging", "--into", "staging", check=False)
    assert itself.returncode == 2 and "does not merge into itself" in itself.stderr
    author = steep(
        ci, "merge", "shop", "feature", "--into", "staging", "--author", "x", check=False
    )
    assert author.returncode == 2 and "the author must read 'Name <mail>'" in author.stderr
    assert origin(ci, "staging") == base


def test_merges_into_one_target_are_tested_one_at_a_time_on_what_the_last_one_left(ci, tmp_path):
    go = tmp_path / "go"
    steps = [{"name": "tests", "run": f"while [ ! -f {go} ]; do sleep 0.05; done"}]
    ci.repo.commit({"steep.toml": definition(steps, timeout=60)})
    ci.repo.push("main")
    ci.repo.push("staging")
    branch_from(ci, "main", "one", {"one.txt": "1\n"})
    two = branch_from(ci, "main", "two", {"two.txt": "2\n"})
    ci.worker()
    first = gate.request_merge("shop", "one", "staging", author=ADA)
    second = gate.request_merge("shop", "two", "staging", author=ADA)
    step_running(ci, first)
    waiting = gate.status(second)
    assert (waiting.state, waiting.ahead, waiting.sha) == ("waiting", first, None)
    assert ci.run(second).state == "queued"
    go.touch()
    a, b = settled(first), settled(second)
    assert a.state == b.state == "merged", (a.line, b.line)
    assert b.base == a.sha  # made on the staging the first merge left
    assert origin(ci, "staging") == b.sha and parents(ci, b.sha) == [a.sha, two]
    # --ff: a branch that has the target in it moves the target to itself
    git("fetch", "--quiet", "origin", cwd=ci.repo.work)
    three = branch_from(ci, "origin/staging", "three", {"three.txt": "3\n"})
    c = settled(gate.request_merge("shop", "three", "staging", author=ADA, ff=True))
    assert c.state == "merged" and c.sha == three == origin(ci, "staging")
    assert ci.wait(c.target_run).step("tests").reused_from == c.id


def test_a_merge_asked_while_no_worker_runs_waits_for_one_and_loses_nothing(ci, monkeypatch):
    ci.repo.commit({"steep.toml": definition([{"name": "tests", "run": "true"}])})
    ci.repo.push("main")
    ci.repo.push("staging")
    head = branch_from(ci, "main", "feature", {"feature.txt": "x\n"})
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Bo Ops")  # who asks, as git would sign it
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "bo@example.com")
    asked = steep(
        ci, "merge", "shop", "feature", "--into", "staging", "--timeout", "2", check=False
    )
    assert asked.returncode == 1
    run_id = asked.stdout.split(":")[0]
    assert (
        f"{run_id}: merge of feature into staging, asked by Bo Ops <bo@example.com>" in asked.stdout
    )
    assert "is a steep pipeline server (or a worker of steep.pipeline.jobs" in asked.stderr
    assert f"{run_id} is not settled after 2 s (waiting)" in asked.stderr
    ci.worker()
    merged = settled(run_id)
    assert merged.state == "merged" and origin(ci, "staging") == merged.sha
    assert parents(ci, merged.sha)[1] == head
    assert git("log", "-1", "--format=%an <%ae>", merged.sha, cwd=ci.repo.origin) == (
        "Bo Ops <bo@example.com>"
    )
