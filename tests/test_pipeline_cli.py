"""`steep pipeline ...` as a user runs it: real processes, real git, the contract's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.pipeline_fixtures import definition


def steep(ci, *args, check=True, timeout=60):
    env = {
        **os.environ,
        "STEEP_REDIS_URL": ci.server.url,
        "STEEP_CONFIG": str(ci.config_path),
        "PYTHONPATH": str(ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "steep", "pipeline", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def test_run_runs_show_logs_cancel_and_rerun_from_the_command_line(ci):
    ci.repo.commit(
        {
            "steep.toml": definition(
                [
                    {"name": "lint", "run": "echo lint ok"},
                    {"name": "tests", "run": "echo 'FAILED test_cart'; exit 1", "stage": "test"},
                ]
            )
        }
    )
    sha = ci.repo.push("main")
    ci.worker()
    run_id = steep(ci, "run", "shop").stdout.strip()  # the remote's default branch
    assert run_id == "shop-1"
    follow = steep(ci, "logs", run_id, "--follow", check=False)
    assert follow.returncode == 1  # the run failed
    assert "lint | lint ok" in follow.stdout and "tests | FAILED test_cart" in follow.stdout
    assert f"run {run_id} failed" in follow.stderr
    one = steep(ci, "logs", run_id, "--step", "tests").stdout.splitlines()
    assert "FAILED test_cart" in one and not any(line.startswith("lint") for line in one)

    listed = json.loads(steep(ci, "runs", "shop", "--json").stdout)["runs"]
    assert [r["id"] for r in listed] == [run_id]
    run = listed[0]
    assert {k: run[k] for k in ("project", "ref", "sha", "trigger", "state")} == {
        "project": "shop",
        "ref": "main",
        "sha": sha,
        "trigger": "manual",
        "state": "failed",
    }
    assert [(s["name"], s["state"], s["exit_code"]) for s in run["steps"]] == [
        ("lint", "passed", 0),
        ("tests", "failed", 1),
    ]
    shown = json.loads(steep(ci, "show", run_id, "--json").stdout)
    assert shown["id"] == run_id and shown["stages"] == [["lint"], ["tests"]]
    table = steep(ci, "show", run_id).stdout
    assert "tests" in table and "exited with code 1" in table

    again = steep(ci, "rerun", run_id, "--failed").stdout.strip()
    assert again == "shop-2"
    assert ci.wait(again).step("lint").reused_from == run_id
    by_sha = steep(ci, "run", "shop", "--sha", sha).stdout.strip()
    assert ci.wait(by_sha).meta.sha == sha
    cancelled = steep(ci, "cancel", by_sha).stdout
    assert "had finished already" in cancelled
    as_json = json.loads(steep(ci, "cancel", by_sha, "--json").stdout)
    assert as_json == {"id": by_sha, "cancelled": False, "state": "failed"}
    lines = [json.loads(x) for x in steep(ci, "logs", run_id, "--json").stdout.splitlines()]
    assert {"step": "tests", "line": "FAILED test_cart"} in lines
    projects = json.loads(steep(ci, "projects", "--json").stdout)["projects"]
    lanes = projects[0]["lanes"]
    assert lanes["branch:main"]["run"] == again and lanes[f"commit:{sha[:12]}"]["run"] == by_sha


def test_bad_input_gets_one_clear_line(ci):
    unknown = steep(ci, "runs", "nope", check=False)
    assert unknown.returncode != 0 and "unknown project 'nope'" in unknown.stderr
    missing = steep(ci, "show", "shop-999", check=False)
    assert missing.returncode == 2 and "no run 'shop-999'" in missing.stderr
    both = steep(ci, "run", "shop", "--ref", "main", "--sha", "abc", check=False)
    assert "give --ref or --sha, not both" in both.stderr
    empty = steep(ci, "run", "shop", check=False)  # the origin has no commit yet
    assert empty.returncode == 2 and "cannot read the default branch" in empty.stderr
    ci.config_path.write_text(
        ci.config_path.read_text().replace('forge = "none"', 'forge = "gitlab"')
    )
    broken = steep(ci, "projects", check=False)
    assert broken.returncode == 2
    assert "'forge' must be one of github, gitea, none, got 'gitlab'" in broken.stderr
    assert "Traceback" not in broken.stderr
