"""Production's data into staging from the pipeline: `data_from = "production"` lets the
Environments page (and `steep pipeline copy-data`) run `steep data copy production
staging` in staging's current release on a build machine, recorded with its output.
Real SQLite databases, a real release, the real CLI in a real worker."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from steep.pipeline import data_copies, start_run
from steep.pipeline.definition import DefinitionError, parse
from tests.conftest import wait_for
from tests.pipeline_fixtures import definition, toml_value
from tests.test_pipeline_cli import steep

RULES = """
[data.scrub.users]
email = "fake_email"
name = "fake_name"
"""


def _app(tmp_path: Path, data_from: str | None = "production") -> dict[str, str]:
    production, staging = tmp_path / "production.sqlite3", tmp_path / "staging.sqlite3"
    text = definition([{"name": "tests", "run": "true"}])
    for env, branch, more in (
        ("staging", "staging", {"data_from": data_from} if data_from else {}),
        ("production", "main", {"requires": "staging"}),
    ):
        table = {"branch": branch, "url": "http://127.0.0.1:9", "strategy": "releases"}
        table |= {"path": str(tmp_path / "srv" / env), **more}
        text += f"[pipeline.environments.{env}]\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in table.items()
        )
    text += RULES
    text += f'[production]\ndatabase_url = "sqlite:///{production}"\n'
    text += f'[staging]\ndatabase_url = "sqlite:///{staging}"\n'
    return {"steep.toml": text}


@pytest.fixture
def databases(tmp_path: Path) -> tuple[Path, Path]:
    production, staging = tmp_path / "production.sqlite3", tmp_path / "staging.sqlite3"
    with sqlite3.connect(production) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        db.executemany(
            "INSERT INTO users (email, name) VALUES (?, ?)",
            [(f"u{i}@customer.test", f"User {i}") for i in range(50)],
        )
    with sqlite3.connect(staging) as db:
        db.execute("CREATE TABLE staging_marker (id INTEGER)")
    return production, staging


def test_staging_gets_a_scrubbed_copy_from_the_command_line(ci, tmp_path, databases):
    _, staging = databases
    ci.repo.commit(_app(tmp_path), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run = ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90)
    assert run.state == "passed", run.reason
    done = steep(ci, "copy-data", "shop", "staging", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    copy = json.loads(done.stdout)
    assert copy["state"] == "succeeded" and copy["source"] == "production"
    assert copy["release"] and copy["by"]
    assert any("users.email" in line for line in copy["lines"]), copy["lines"]
    with sqlite3.connect(staging) as db:
        emails = [r[0] for r in db.execute("SELECT email FROM users")]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert len(emails) == 50 and not any(e.endswith("@customer.test") for e in emails)
    assert "staging_marker" not in tables  # swapped in
    (recorded,) = data_copies.history("shop", "staging")
    assert recorded.id == copy["id"] and recorded.finished_at >= recorded.started_at


def test_a_failing_copy_is_recorded_with_its_reason_and_staging_stays(ci, tmp_path, databases):
    _, staging = databases
    files = _app(tmp_path)
    files["steep.toml"] = files["steep.toml"].replace('name = "fake_name"', 'nme = "fake_name"')
    ci.repo.commit(files, branch="staging")
    ci.repo.push("staging")
    ci.worker()
    assert ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90).state == "passed"
    done = steep(ci, "copy-data", "shop", "staging", check=False)
    assert done.returncode != 0
    assert "the copy failed:" in done.stderr and "nme" in done.stderr, done.stderr
    with sqlite3.connect(staging) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"staging_marker"}
    assert data_copies.history("shop", "staging")[0].state == "failed"


def test_copies_are_refused_where_they_do_not_belong(ci, tmp_path, databases):
    ci.repo.commit(_app(tmp_path, data_from=None), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    refused = steep(ci, "copy-data", "shop", "staging", check=False)
    assert "shop has never deployed to staging" in refused.stderr
    assert ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90).state == "passed"
    refused = steep(ci, "copy-data", "shop", "staging", check=False)
    assert refused.returncode != 0
    assert 'staging takes no copies of data: give it data_from = "production"' in refused.stderr
    # data flows down the promotion order only: never over the environment it came from
    text = _app(tmp_path)["steep.toml"].replace('data_from = "production"\n', "")
    text = text.replace('requires = "staging"', 'requires = "staging"\ndata_from = "staging"')
    with pytest.raises(DefinitionError, match="data_from must be an environment that comes after"):
        parse(text, "steep.toml")
    with pytest.raises(DefinitionError, match="data_from 'nowhere' is not an environment"):
        parse(_app(tmp_path, data_from="nowhere")["steep.toml"], "steep.toml")


def test_the_environments_page_copies_and_shows_the_history(ci, ci_web, tmp_path, databases):
    import httpx2

    ci.repo.commit(_app(tmp_path), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    assert ci.wait(start_run("shop", "staging", trigger="manual")[0], timeout=90).state == "passed"
    page = f"{ci_web}/pipeline/projects/shop/environments"
    with httpx2.Client() as web:
        text = web.get(page).text
        assert "Copy production's data here" in text
        token = web.cookies.get("steep_csrf")
        assert web.post(f"{page}/staging/copy-data").status_code == 403  # no CSRF token
        answer = web.post(f"{page}/staging/copy-data", data={"_csrf": token, "next": page})
        assert answer.status_code in (200, 303)
        copy = wait_for(
            lambda: next(
                (c for c in data_copies.history("shop", "staging") if c.state == "succeeded"), None
            ),
            timeout=60,
            message="the copy to end",
        )
        assert copy.by == "dashboard"
        text = web.get(page).text
    assert f'data-copy="{copy.id}"' in text and "Data copies into staging" in text
