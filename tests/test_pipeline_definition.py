"""The build definition and the CI server's projects: parsed and checked before
anything runs, every error with the file, the line and what to change."""

from __future__ import annotations

import pytest

from steep.pipeline.config import load
from steep.pipeline.definition import DefinitionError, parse
from steep.settings import ConfigError, Settings

CONTRACT = """\
[pipeline]
timeout = 900
[[pipeline.steps]]
name = "lint"
run = "ruff check ."
[[pipeline.steps]]
name = "tests"
run = "pytest -q"
stage = "test"
timeout = 600
[[pipeline.steps]]
name = "types"
run = "mypy"
stage = "test"
"""


def test_the_contracts_example_has_stages_in_order_of_first_mention():
    plan = parse(CONTRACT)
    assert plan.timeout == 900
    assert [[s.name for s in stage] for stage in plan.stages] == [["lint"], ["tests", "types"]]
    assert plan.step("tests").timeout == 600
    assert plan.step("types").timeout == 900  # the run's, by default
    assert parse(CONTRACT.replace("timeout = 600", "timeout = 5000")).step("tests").timeout == 900


def test_setup_env_and_cache_are_read():
    text = CONTRACT.replace(
        "timeout = 900\n",
        'timeout = 900\nsetup = "pip install -e ."\nenv = { A = "1", B = 2 }\n'
        '[pipeline.cache]\npaths = [".venv"]\nkey = ["requirements.txt"]\n',
    )
    plan = parse(text)
    assert plan.env == {"A": "1", "B": "2"}
    assert plan.step("lint").setup == "pip install -e ."
    assert plan.cache is not None and plan.cache.paths == (".venv",)
    assert parse(text).to_json() == type(plan).from_json(plan.to_json()).to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('[[pipeline.steps]]\nname = "lint"', '[[pipeline.steps]\nname = "lint"'),
            "steep.toml:3: invalid TOML",
        ),
        (
            ('run = "pytest -q"', 'run = ""'),
            "steep.toml:8: step 'tests': 'run' must be the command",
        ),
        (
            ("timeout = 600", "timeout = -1"),
            "steep.toml:10: step 'tests': 'timeout' must be a number",
        ),
        (("timeout = 600", 'timeout = "10m"'), "steep.toml:10: step 'tests': 'timeout' must be"),
        (('name = "types"', 'name = "tests"'), "steep.toml:11: two steps are named 'tests'"),
        (('name = "types"', 'name = "my types"'), "steep.toml:12: step 'my types': 'name' must be"),
        (("timeout = 900", "timeout = 900\nretries = 3"), "steep.toml:3: unknown key 'retries'"),
        (
            ('stage = "test"\ntimeout', 'stge = "test"\ntimeout'),
            "steep.toml:9: step 'tests': unknown key 'stge' (did you mean 'stage'?)",
        ),
    ],
)
def test_a_broken_definition_names_file_line_and_reason(change, message):
    old, new = change
    assert old in CONTRACT
    with pytest.raises(DefinitionError) as caught:
        parse(CONTRACT.replace(old, new, 1))
    assert str(caught.value).startswith(message), str(caught.value)


def test_no_definition_says_what_to_add():
    with pytest.raises(DefinitionError, match=r"no build definition: add a \[pipeline\] table"):
        parse('[cron.nightly]\njob = "app.jobs.x"\nschedule = "@daily"\n')


def test_projects_are_checked_and_hold_no_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOP_HOOK", "s3cret-value")
    projects = {
        "shop": {
            "repo": "https://user:pw@git.example.com/acme/shop.git",
            "forge": "github",
            "webhook_secret_env": "SHOP_HOOK",
            "poll": 30,
        },
    }
    config = load(Settings(data_dir=tmp_path, pipeline={"projects": projects}))
    shop = config.project("shop")
    assert shop.webhook_secret() == b"s3cret-value"
    assert "s3cret-value" not in repr(shop) and "s3cret-value" not in repr(config)
    assert shop.shown_repo == "https://user:***@git.example.com/acme/shop.git"
    with pytest.raises(ConfigError, match="unknown project 'nope' \\(projects: shop"):
        config.project("nope")
    bad = [
        ({"forge": "gitlab"}, "'forge' must be one of github, gitea, none, got 'gitlab'"),
        ({"poll": -1}, "'poll' must be a number of seconds >= 0"),
        ({"webhook_secret_env": "not a name"}, "'webhook_secret_env' must name an environment"),
        ({"tokn_env": "X"}, "unknown key 'tokn_env' (did you mean 'token_env'?)"),
    ]
    for change, message in bad:
        table = {**projects["shop"], **change}
        with pytest.raises(ConfigError) as caught:
            load(Settings(data_dir=tmp_path, pipeline={"projects": {"shop": table}}))
        assert "[pipeline.projects.shop]" in str(caught.value)
        assert message in str(caught.value)
    with pytest.raises(ConfigError, match="needs 'repo'"):
        load(Settings(data_dir=tmp_path, pipeline={"projects": {"shop": {}}}))


def test_a_steep_toml_with_a_pipeline_table_is_read_by_every_steep_process(tmp_path):
    from steep.settings import load_settings

    (tmp_path / "steep.toml").write_text(CONTRACT)
    settings = load_settings(cwd=tmp_path, environ={})
    assert settings.pipeline["steps"][0]["name"] == "lint"  # an app's workers accept it
    (tmp_path / "steep.toml").write_text("pipeline = 3\n")
    with pytest.raises(ConfigError, match="'pipeline' must be a table"):
        load_settings(cwd=tmp_path, environ={})


ENVIRONMENTS = (
    CONTRACT
    + """\
[pipeline.environments.staging]
branch = "staging"
url = "http://127.0.0.1:8001"
strategy = "releases"
path = "/srv/shop/staging"
host = ""
restart = "systemctl --user restart shop-staging"
health = "/health"
[[pipeline.environments.staging.checks]]
http = "/"
expect_status = 200
expect_text = "Shop"

[pipeline.environments.production]
branch = "master"
url = "http://127.0.0.1:8002"
strategy = "releases"
path = "/srv/shop/production"
requires = "staging"
approval = false
"""
)


def test_the_contracts_environments_are_read():
    plan = parse(ENVIRONMENTS)
    staging, production = plan.environments["staging"], plan.environments["production"]
    assert (staging.branch, staging.strategy, staging.path) == (
        "staging",
        "releases",
        "/srv/shop/staging",
    )
    assert staging.checks[0].http == "/" and staging.checks[0].expect_text == "Shop"
    assert staging.absolute(staging.health) == "http://127.0.0.1:8001/health"
    assert staging.variables()["STEEP_ENV"] == "staging"
    assert production.requires == "staging"
    deploying = plan.with_deploys("master")
    assert [s.name for s in deploying.stages[-1]] == ["deploy-production"]
    assert plan.with_deploys("feature") is plan
    assert type(plan).from_json(deploying.to_json()) == deploying


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'strategy = "releases"\npath = "/srv/shop/staging"',
            'strategy = "ftp"\npath = "/srv/shop/staging"',
            "steep.toml:18: [pipeline.environments.staging]: 'strategy' must be one of releases",
        ),
        ('requires = "staging"', 'requires = "qa"', "requires 'qa', which is not an environment"),
        ('url = "http://127.0.0.1:8002"', 'url = "127.0.0.1:8002"', "'url' must be an http(s) URL"),
        ('path = "/srv/shop/production"\n', "", "the releases strategy needs 'path'"),
        ("expect_status = 200", "expect_status = 2000", "'expect_status' must be an HTTP status"),
        ('branch = "master"', 'brnch = "master"', "unknown key 'brnch' (did you mean 'branch'?)"),
        (
            "approval = false",
            "approval = true\napproval_timeout = 0",
            "'approval_timeout' must be a number of seconds above 0, got 0",
        ),
    ],
)
def test_a_broken_environment_names_file_line_and_reason(old, new, message):
    assert old in ENVIRONMENTS
    with pytest.raises(DefinitionError) as caught:
        parse(ENVIRONMENTS.replace(old, new, 1))
    assert message in str(caught.value), str(caught.value)
    assert str(caught.value).startswith("steep.toml:")
