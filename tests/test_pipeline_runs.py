"""Runs end to end: real git repositories, real `steep worker` processes, real commands."""

from __future__ import annotations

from steep.pipeline import start_run
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
