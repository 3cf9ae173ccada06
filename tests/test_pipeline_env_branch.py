"""An environment whose branch the remote does not have never deploys: `steep pipeline
envs` and the Environments page say so, naming the branches there are."""

from __future__ import annotations

import json

from steep.pipeline import environments_view, start_run
from tests.pipeline_fixtures import definition, toml_value
from tests.test_pipeline_cli import steep


def test_an_environment_naming_a_branch_the_remote_lacks_is_reported(ci):
    text = definition([{"name": "tests", "run": "true"}])
    for env, branch in (("staging", "stagin"), ("production", "main")):
        table = {"branch": branch, "url": "http://127.0.0.1:9", "strategy": "command"}
        table["command"] = "true"
        text += f"[pipeline.environments.{env}]\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in table.items()
        )
    ci.repo.commit({"steep.toml": text})
    ci.repo.push("main")
    ci.worker()
    run = ci.wait(start_run("shop", "main", trigger="manual")[0], timeout=90)
    assert run.state == "passed", run.reason
    rows = {
        r["name"]: r for r in json.loads(steep(ci, "envs", "shop", "--json").stdout)["environments"]
    }
    assert rows["staging"]["problem"] == (
        "the remote has no branch 'stagin', so nothing deploys here (branches: main)"
    )
    assert rows["production"]["problem"] is None and rows["production"]["sha"] == run.meta.sha
    shown = steep(ci, "envs", "shop").stdout
    assert "staging: the remote has no branch 'stagin'" in " ".join(shown.split())
    cards = {c["name"]: c for c in environments_view.project_view("shop")["environments"]}
    assert cards["staging"]["problem"].startswith("the remote has no branch 'stagin'")
