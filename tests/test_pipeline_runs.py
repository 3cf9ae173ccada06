"""Runs end to end: real git repositories, real `steep worker` processes, real commands."""

from __future__ import annotations

from steep.pipeline import cancel_run, rerun, start_run
from tests.conftest import wait_for
from tests.pipeline_fixtures import definition


def test_a_run_passes_through_its_stages_in_order(ci):
    ci.repo.commit(
        {
            "steep.toml": definition(
                [
                    {"name": "lint", "run": "echo linting; test -f app.py"},
                    {"name": "unit", "run": "echo unit $STEEP_STAGE >> ../order", "stage": "test"},
                    {"name": "e2e", "run": "echo e2e $CI", "stage": "test"},
                ],
                timeout=120,
            ),
            "app.py": "print('hi')\n",
        }
    )
    sha = ci.repo.push("main")
    ci.worker()
    run_id, created = start_run("shop", "main", trigger="manual")
    assert created
    run = ci.wait(run_id)
    assert run.state == "passed", (run.reason, [(s.name, s.state, s.reason) for s in run.steps])
    assert run.meta.sha == sha
    assert run.stages == [["lint"], ["unit", "e2e"]]
    assert [s.state for s in run.steps] == ["passed"] * 3
    assert all(s.exit_code == 0 for s in run.steps)
    lint, unit = run.step("lint"), run.step("unit")
    assert lint.finished <= unit.started  # the test stage began after lint passed


def _steps(run):
    return {s.name: (s.state, s.exit_code, s.reason) for s in run.steps}


def test_a_failing_step_fails_the_run_and_the_next_stage_never_starts(ci):
    ci.repo.commit(
        {
            "steep.toml": definition(
                [
                    {"name": "tests", "run": "echo 'FAILED test_cart'; exit 3"},
                    {"name": "deploy-ish", "run": "touch /tmp/never"},
                ]
            )
        }
    )
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(start_run("shop", "main", trigger="manual")[0])
    assert run.state == "failed"
    assert run.step("tests").state == "failed"
    assert run.step("tests").exit_code == 3
    assert "exited with code 3" in run.reason
    assert run.step("deploy-ish").state == "skipped"  # never started
    assert run.step("deploy-ish").started is None


def test_a_hanging_step_is_killed_with_its_whole_process_group_at_its_timeout(ci, tmp_path):
    marker = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {marker}; sleep 300"
    ci.repo.commit({"steep.toml": definition([{"name": "hang", "run": script, "timeout": 2}])})
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(start_run("shop", "main", trigger="manual")[0], timeout=60)
    assert run.state == "failed"
    hang = run.step("hang")
    assert hang.state == "failed" and hang.exit_code is None
    assert "timed out after 2 s" in hang.reason
    import psutil

    child = int(marker.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_command_that_is_not_found_says_so(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "no-such-tool --check"}])})
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(start_run("shop", "main", trigger="manual")[0])
    step = run.step("t")
    assert (step.state, step.exit_code) == ("failed", 127)
    assert "not found" in step.reason


def test_a_broken_definition_fails_the_run_with_file_line_and_reason(ci):
    text = definition([{"name": "t", "run": "true", "timout": 5}])
    ci.repo.commit({"steep.toml": text})
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(start_run("shop", "main", trigger="manual")[0])
    assert run.state == "error"
    line = text.splitlines().index("timout = 5") + 1
    assert (
        f"steep.toml:{line}: step 't': unknown key 'timout' (did you mean 'timeout'?)" in run.reason
    )
    assert run.steps == []


def test_a_ref_that_does_not_exist_errs_and_other_runs_go_on(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}])})
    ci.repo.push("main")
    ci.worker()
    gone = start_run("shop", "no-such-branch", trigger="manual")[0]
    fine = start_run("shop", "main", trigger="manual")[0]
    assert ci.wait(gone).state == "error"
    assert "ref 'no-such-branch' does not exist" in ci.run(gone).reason
    assert ci.wait(fine).state == "passed"


def _log(run_id, step):
    from steep.pipeline import logs

    return [line for _, line in logs.read(run_id, step)]


def test_secrets_are_masked_in_logs_and_never_given_to_pull_requests(ci):
    ci.configure(secrets=["DEPLOY_KEY"], token_env="SHOP_TOKEN", webhook_secret_env="SHOP_HOOK")
    ci.env = {
        "DEPLOY_KEY": "hunter2-deploy",
        "SHOP_TOKEN": "tok-123456",
        "SHOP_HOOK": "hook-secret",
    }
    show = "echo key=$DEPLOY_KEY; echo token=${SHOP_TOKEN:-unset} hook=${SHOP_HOOK:-unset}"
    ci.repo.commit({"steep.toml": definition([{"name": "show", "run": show}])})
    ci.repo.push("main")
    ci.repo.commit({"feature.txt": "x"}, branch="feature")
    ci.repo.push("feature")
    ci.worker()
    branch = ci.wait(start_run("shop", "main", trigger="manual")[0])
    pr = ci.wait(start_run("shop", "feature", trigger="manual", pr=7, base_ref="main")[0])
    assert branch.state == pr.state == "passed"
    branch_log = _log(branch.id, "show")
    assert "key=***" in branch_log  # given to the branch build, and masked
    assert "token=unset hook=unset" in branch_log  # the server's own secrets never
    assert "key=" in _log(pr.id, "show")  # a pull request's build gets none
    files = list((ci.data / "pipeline" / "runs").rglob("*.log"))
    assert files
    text = "".join(f.read_text() for f in files)
    assert "hunter2-deploy" not in text and "key=***" in text


def test_a_pull_request_tests_the_merge_of_its_head_into_its_base(ci):
    ci.repo.commit(
        {"steep.toml": definition([{"name": "t", "run": "test -f b.txt && test -f c.txt"}])}
    )
    ci.repo.push("main")
    head = ci.repo.commit({"b.txt": "feature"}, branch="feature")
    ci.repo.push("feature")
    ci.repo.checkout("main")
    ci.repo.commit({"c.txt": "main moved on"})
    base = ci.repo.push("main")
    ci.worker()
    run = ci.wait(
        start_run("shop", "feature", trigger="pull_request", sha=head, pr=3, base_ref="main")[0]
    )
    assert run.state == "passed", run.reason
    assert run.meta.sha == head  # reported on the head
    assert run.base_sha == base and run.merge_sha not in (head, base)
    from tests.pipeline_fixtures import git

    parents = git(
        "rev-list",
        "--parents",
        "-n",
        "1",
        run.merge_sha,
        cwd=ci.data / "pipeline" / "mirrors" / "shop.git",
    )
    assert parents.split()[1:] == [base, head]


def test_a_pull_request_that_does_not_merge_says_which_files_conflict(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}]), "x.txt": "1"})
    ci.repo.push("main")
    head = ci.repo.commit({"x.txt": "feature"}, branch="feature")
    ci.repo.push("feature")
    ci.repo.checkout("main")
    ci.repo.commit({"x.txt": "main"})
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(
        start_run("shop", "feature", trigger="pull_request", sha=head, pr=4, base_ref="main")[0]
    )
    assert run.state == "error"
    assert "does not merge into main: conflicts in x.txt" in run.reason


def _running(ci, run_id, step):
    def look():
        run = ci.run(run_id)
        record = run and run.step(step)
        return record if record and record.state == "running" and record.pid else None

    return wait_for(look, timeout=30, message=f"step {step} running")


def test_a_newer_push_cancels_the_unfinished_run_of_the_older_commit(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "slow", "run": "sleep 60"}])})
    first = ci.repo.push("main")
    ci.worker()
    old = start_run("shop", "main", trigger="push", sha=first)[0]
    _running(ci, old, "slow")
    second = ci.repo.commit({"a": "1"})
    ci.repo.push("main")
    new, created = start_run("shop", "main", trigger="push", sha=second)
    assert created
    again, created = start_run("shop", "main", trigger="poll", sha=second)
    assert (again, created) == (new, False)  # the same push seen twice builds once
    run = ci.wait(old, timeout=30)
    assert run.state == "cancelled" and f"superseded by {new}" in run.reason
    step = ci.wait_step(old, "slow")
    assert step.state == "cancelled"
    assert ci.run(new).state in ("queued", "running")
    cancel_run(new)
    assert ci.wait(new).state == "cancelled"


def test_a_cancelled_run_ends_its_running_step_and_keeps_the_log(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "slow", "run": "echo started; sleep 60"}])})
    ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    record = _running(ci, run_id, "slow")
    import psutil

    assert psutil.pid_exists(record.pid)
    assert cancel_run(run_id, "not needed")
    step = ci.wait_step(run_id, "slow")
    assert step.state == "cancelled"
    wait_for(lambda: not psutil.pid_exists(record.pid), message="the step's shell to end")
    assert ci.run(run_id).reason == "not needed"
    assert "started" in _log(run_id, "slow")


def test_rerun_of_failed_steps_only_carries_the_passed_ones_over(ci, tmp_path):
    flag = tmp_path / "fixed"
    ci.repo.commit(
        {
            "steep.toml": definition(
                [
                    {"name": "lint", "run": "true", "stage": "check"},
                    {"name": "tests", "run": f"test -f {flag}", "stage": "check"},
                    {"name": "package", "run": "true"},
                ]
            )
        }
    )
    ci.repo.push("main")
    ci.worker()
    first = ci.wait(start_run("shop", "main", trigger="manual")[0])
    assert first.state == "failed"
    assert _steps(first)["package"][0] == "skipped"
    flag.write_text("yes")
    again = ci.wait(rerun(first.id, failed_only=True))
    assert again.state == "passed", again.reason
    assert again.meta.rerun_of == first.id and again.meta.sha == first.meta.sha
    lint = again.step("lint")
    assert lint.reused_from == first.id and lint.started is None  # not run again
    assert again.step("tests").started is not None
    assert again.step("package").state == "passed"
    whole = ci.wait(rerun(first.id))
    assert whole.step("lint").reused_from is None and whole.state == "passed"


def test_a_build_whose_worker_is_killed_runs_the_step_again_and_ends(ci, tmp_path):
    marker = tmp_path / "attempts"
    script = f"echo x >> {marker}; if [ $(wc -l < {marker}) -lt 2 ]; then sleep 60; fi; echo ok"
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": script}])})
    ci.repo.push("main")
    worker = ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    first = _running(ci, run_id, "t")
    wait_for(lambda: marker.exists(), message="the first attempt to start")
    worker.kill_tree()  # the machine is gone: supervisor, worker process, not the step's shell
    ci.worker()  # another build machine
    run = ci.wait(run_id, timeout=60)
    assert run.state == "passed", run.reason
    step = run.step("t")
    assert step.attempt == 2
    assert any("the worker of the previous attempt stopped" in line for line in _log(run_id, "t"))
    import psutil

    # the first attempt's shell, orphaned by the kill, was ended by the second attempt
    wait_for(lambda: not psutil.pid_exists(first.pid), message="the orphaned shell to end")


def test_the_cache_is_restored_for_the_same_key_and_not_for_another(ci):
    script = (
        "if [ -f .venv/made ]; then echo cache hit;"
        " else mkdir -p .venv; echo made > .venv/made; echo cache miss; fi"
    )
    steps = [{"name": "deps", "run": script}]
    cache = {"paths": [".venv"], "key": ["requirements.txt"]}
    ci.repo.commit({"steep.toml": definition(steps, cache=cache), "requirements.txt": "flask==3\n"})
    ci.repo.push("main")
    ci.worker()
    one = ci.wait(start_run("shop", "main", trigger="manual")[0])
    two = ci.wait(start_run("shop", "main", trigger="manual")[0])
    assert "cache miss" in _log(one.id, "deps") and "cache hit" in _log(two.id, "deps")
    ci.repo.commit({"requirements.txt": "flask==3.1\n"})
    ci.repo.push("main")
    three = ci.wait(start_run("shop", "main", trigger="manual")[0])
    assert "cache miss" in _log(three.id, "deps")


def test_the_whole_run_has_a_timeout_too(ci):
    steps = [{"name": "one", "run": "sleep 1"}, {"name": "two", "run": "sleep 60"}]
    ci.repo.commit({"steep.toml": definition(steps, timeout=3)})
    ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    run = ci.wait(run_id, timeout=60)
    assert run.state == "failed"
    assert run.reason == "step 'two' failed: the run timed out after 3 s: its processes were ended"
    assert run.finished - run.started < 10


def test_a_run_whose_steps_no_worker_takes_ends_at_its_deadline(ci):
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}], timeout=1)})
    ci.repo.push("main")
    ci.worker(queues="pipeline-control")  # no build worker: the step waits in its queue
    run_id = start_run("shop", "main", trigger="manual")[0]
    run = ci.wait(run_id, timeout=60)
    assert (run.state, run.reason) == ("failed", "the run timed out after 1 s")
    assert run.step("t").state == "skipped"


def test_only_the_newest_runs_are_kept_with_their_logs(ci):
    text = ci.config_path.read_text().replace("[pipeline]\n", "[pipeline]\nkeep_runs = 2\n")
    ci.config_path.write_text(text)
    from steep.settings import configure, get_settings

    configure(pipeline={**get_settings().pipeline, "keep_runs": 2})
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "echo hello"}])})
    ci.repo.push("main")
    ci.worker()
    ids = [ci.wait(start_run("shop", "main", trigger="manual")[0]).id for _ in range(3)]
    from steep.pipeline import list_runs, store

    assert [r.id for r in list_runs("shop")] == ids[:0:-1]  # the two newest, newest first
    assert ci.run(ids[0]) is None
    assert not ci.client.exists(store.keys().log(ids[0], "t"))
    assert not (ci.data / "pipeline" / "runs" / ids[0]).exists()
    assert (ci.data / "pipeline" / "runs" / ids[2] / "t.log").is_file()


def test_a_full_workspace_disk_is_said_on_the_step_and_the_run_ends(ci, tmp_path):
    import subprocess

    import pytest

    # a real full disk: the build machine's data dir on a small tmpfs (needs root)
    ci.data.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(ci.data)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        import os

        big = os.urandom(4 * 1024 * 1024).hex()[: 4 * 1024 * 1024]  # 4 MB, hardly compressible
        ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}]), "big.txt": big})
        ci.repo.push("main")
        ci.worker()
        run = ci.wait(start_run("shop", "main", trigger="manual")[0], timeout=60)
        assert run.state in ("error", "failed"), run.reason
        text = run.reason + " ".join(s.reason or "" for s in run.steps)
        assert "no space left" in text.lower(), text
    finally:
        ci.stop()
        subprocess.run(["umount", "-l", str(ci.data)], capture_output=True)


def test_a_build_machine_of_its_own_makes_the_same_merge_of_a_pull_request(ci, tmp_path):
    # the control worker makes the merge in its mirror; the build worker, with a data
    # directory of its own (another machine's mirror), makes the same commit from the
    # base and head it fetched, and builds it
    ci.repo.commit(
        {"steep.toml": definition([{"name": "t", "run": "test -f b.txt && test -f c.txt"}])}
    )
    ci.repo.push("main")
    head = ci.repo.commit({"b.txt": "feature"}, branch="feature")
    ci.repo.push("feature")
    ci.repo.checkout("main")
    ci.repo.commit({"c.txt": "main moved on"})
    ci.repo.push("main")
    ci.worker(queues="pipeline-control")
    elsewhere = tmp_path / "build-machine"
    ci.worker(queues="pipeline", env={"STEEP_DATA_DIR": str(elsewhere)})
    run = ci.wait(
        start_run("shop", "feature", trigger="pull_request", sha=head, pr=4, base_ref="main")[0]
    )
    assert run.state == "passed", run.reason
    from tests.pipeline_fixtures import git

    there = elsewhere / "pipeline" / "mirrors" / "shop.git"
    assert git("cat-file", "-t", run.merge_sha, cwd=there) == "commit"
    assert not (ci.data / "pipeline" / "workspaces").exists() or not any(
        (ci.data / "pipeline" / "workspaces").iterdir()
    )  # the step ran on the other machine
