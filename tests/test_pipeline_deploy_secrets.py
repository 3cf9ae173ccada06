"""Deploy secrets: the variables a project names in `deploy_secrets` reach its deploys,
never its build steps, and never show in a log line or a deploy record."""

from __future__ import annotations

import hashlib

from steep.pipeline import deploys, logs, start_run
from tests.pipeline_fixtures import definition, toml_value

TOKEN = "fly-token-9f3c2a7e51"
# the command checks it has the token by its digest (the definition is in git: no secret)
HAS_TOKEN = (
    'test "$(printf %s "$FLY_API_TOKEN" | sha256sum | cut -c1-16)" = "'
    + hashlib.sha256(TOKEN.encode()).hexdigest()[:16]
    + '"'
)


def _files(command: str) -> dict[str, str]:
    text = definition([{"name": "tests", "run": 'test -z "$FLY_API_TOKEN" && echo no token here'}])
    table = {
        "branch": "staging",
        "url": "http://127.0.0.1:9",
        "strategy": "command",
        "command": command,
    }
    text += "[pipeline.environments.staging]\n" + "".join(
        f"{k} = {toml_value(v)}\n" for k, v in table.items()
    )
    return {"steep.toml": text}


def test_a_deploy_gets_its_secret_masked_and_a_build_step_never_sees_it(ci):
    ci.configure(deploy_secrets={"staging": ["FLY_API_TOKEN"]})
    ci.env["FLY_API_TOKEN"] = TOKEN
    ci.repo.commit(
        _files(
            f'echo "deploying with $FLY_API_TOKEN"; {HAS_TOKEN} && echo "said $FLY_API_TOKEN" >&2'
            "; exit 3"
        ),
        branch="staging",
    )
    ci.repo.push("staging")
    ci.worker()
    run = ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90)
    tests = [line for _, line in logs.read(run.id, "tests")]
    assert "no token here" in tests, tests  # the build step ran without it
    deploy_log = "\n".join(line for _, line in logs.read(run.id, "deploy-staging"))
    assert "deploying with ***" in deploy_log and "said ***" in deploy_log, deploy_log
    assert TOKEN not in deploy_log
    (deploy,) = deploys.history("shop", "staging")
    assert deploy.state == "failed" and "exit code 3" in (deploy.reason or "")
    record = deploy.to_dict()
    assert TOKEN not in repr(record) and TOKEN not in repr(run.to_dict())
    # the command really had it: with the exit removed, the same deploy succeeds
    ci.repo.commit(_files(HAS_TOKEN), branch="staging")
    ci.repo.push("staging")
    run = ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90)
    assert run.state == "passed", run.reason
    assert deploys.history("shop", "staging")[0].state == "succeeded"


def test_deploy_secrets_are_checked_names(ci):
    import pytest

    from steep.pipeline import config as pipeline_config
    from steep.settings import ConfigError

    for bad, words in (
        ({"staging": "not a list"}, "deploy_secrets"),
        (["lower-case-dash"], "must name an environment variable"),
        (3, "deploy_secrets"),
    ):
        ci.configure(deploy_secrets=bad)
        with pytest.raises(ConfigError, match=words):
            pipeline_config.load()
