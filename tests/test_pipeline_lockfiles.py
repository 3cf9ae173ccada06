"""What runs where, package by package: a deploy records the Python packages its tree
pins (its lock file), and `steep env diff staging production` shows where the deployed
commits and packages differ, beside the settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from steep.pipeline import deploys, lockfiles, start_run
from tests.conftest import ROOT
from tests.pipeline_fixtures import definition, toml_value


def test_each_lock_format_gives_its_pins_with_normalised_names():
    uv = '[[package]]\nname = "Django"\nversion = "5.0.2"\n[[package]]\nname = "shop"\n'
    assert lockfiles.parse("uv.lock", uv) == {"django": "5.0.2"}  # a package without a version
    poetry = '[[package]]\nname = "zope.interface"\nversion = "6.1"\n'
    assert lockfiles.parse("poetry.lock", poetry) == {"zope-interface": "6.1"}
    pylock = 'lock-version = "1.0"\n[[packages]]\nname = "requests"\nversion = "2.32.3"\n'
    assert lockfiles.parse("pylock.toml", pylock) == {"requests": "2.32.3"}
    pipfile = json.dumps({"default": {"Flask": {"version": "==3.0.3"}, "x": {"git": "..."}}})
    assert lockfiles.parse("Pipfile.lock", pipfile) == {"flask": "3.0.3"}
    requirements = (
        "# pinned\nDjango_Extensions[graph]==3.2.3 ; python_version >= '3.11' \\\n"
        "    --hash=sha256:abc\nrequests>=2\n-e .\ncelery===5.4.0\n"
    )
    assert lockfiles.parse("requirements.txt", requirements) == {
        "django-extensions": "3.2.3",
        "celery": "5.4.0",
    }
    assert lockfiles.parse("uv.lock", "not [ toml") == {}
    files = {"requirements.txt": "a==1\n", "uv.lock": '[[package]]\nname = "a"\nversion = "2"\n'}
    assert lockfiles.pinned(files.get) == ("uv.lock", {"a": "2"})  # uv.lock comes first
    assert lockfiles.pinned({}.get) == (None, {})


def _files(requirements: str) -> dict[str, str]:
    text = definition([{"name": "tests", "run": "true"}])
    for env, branch, more in (
        ("staging", "staging", {}),
        ("production", "main", {"requires": "staging"}),
    ):
        table = {"branch": branch, "url": "http://127.0.0.1:9", "strategy": "command"}
        table |= {"command": "true", **more}
        text += f"[pipeline.environments.{env}]\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in table.items()
        )
    return {"steep.toml": text, "requirements.txt": requirements}


def _env_diff(ci, *args):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STEEP_REDIS_URL": ci.server.url,
        "STEEP_CONFIG": str(ci.config_path),
    }
    env.pop("STEEP_ENV", None)
    return subprocess.run(
        [sys.executable, "-m", "steep", "env", "diff", "staging", "production", *args],
        cwd=ci.config_path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_diff_shows_the_deployed_commits_and_packages_that_differ(ci):
    ci.worker()
    ci.repo.commit(_files("Django==5.0.1\nrequests==2.32.3\n"), branch="staging")
    ci.repo.push("staging")
    first = ci.repo.push("main")  # the same commit: production gets what passed staging
    for branch in ("staging", "main"):
        run = ci.wait(start_run("shop", branch, trigger="manual")[0], timeout=90)
        assert run.state == "passed", run.reason
    live = deploys.live("shop", "production")
    assert live is not None and live.lockfile == "requirements.txt"
    assert live.packages == {"django": "5.0.1", "requests": "2.32.3"}
    done = _env_diff(ci, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployed"] == []  # the same code runs in both

    # an upgrade reaches staging only
    ci.repo.checkout("staging")
    second = ci.repo.commit(_files("Django==5.0.2\nrequests==2.32.3\nsentry-sdk==2.1\n"))
    ci.repo.push("staging")
    run = ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90)
    assert run.state == "passed", run.reason
    done = _env_diff(ci, "--json")
    assert done.returncode == 0, done.stderr  # what runs differs by design: not unexpected
    rows = {
        (r["kind"], r["name"]): (r["left"], r["right"]) for r in json.loads(done.stdout)["deployed"]
    }
    assert rows[("deployed", "commit")] == (second, first)
    assert rows[("package", "django")] == ("5.0.2", "5.0.1")
    assert rows[("package", "sentry-sdk")] == ("2.1", "(none)")
    assert ("package", "requests") not in rows
    table = _env_diff(ci)
    assert "what runs (shop)" in table.stdout and "5.0.2" in table.stdout, table.stdout
