"""`steep data copy` between SQLite databases (the backup API, a swap by rename), and the
copy as the built-in job a cron entry runs, in a real worker."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from steep.data.copy import CopyError, copy
from steep.data.jobs import copy_database
from steep.data.scrub import ScrubError

RULES = """
[data]
truncate = ["sessions"]
[data.scrub.users]
email = "fake_email"
name = "fake_name"
phone = "mask"
password_hash = "hash"
note = { set = "redacted" }
[data.scrub.invoices]
user_email = "fake_email"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STEEP_ENV", raising=False)
    monkeypatch.delenv("STEEP_CONFIG", raising=False)
    production = tmp_path / "production.sqlite3"
    with sqlite3.connect(production) as db:
        db.executescript(
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL,
                                name TEXT, phone TEXT, password_hash TEXT, note TEXT);
            CREATE TABLE invoices (id INTEGER PRIMARY KEY,
                                   user_email TEXT NOT NULL REFERENCES users (email));
            CREATE TABLE sessions (id INTEGER PRIMARY KEY, token TEXT);
            """
        )
        db.executemany(
            "INSERT INTO users (email, name, phone, password_hash, note) VALUES (?, ?, ?, ?, ?)",
            [
                (f"u{i}@customer.test", f"User {i}", f"0207{i:06d}", f"h{i}", "vip")
                for i in range(200)
            ],
        )
        db.executemany(
            "INSERT INTO invoices (user_email) VALUES (?)",
            [(f"u{i % 200}@customer.test",) for i in range(300)],
        )
        db.execute("INSERT INTO sessions (token) VALUES ('secret')")
    staging = tmp_path / "staging.sqlite3"
    with sqlite3.connect(staging) as db:
        db.execute("CREATE TABLE staging_marker (id INTEGER)")
    (tmp_path / "steep.toml").write_text(
        RULES + f'[production]\ndatabase_url = "sqlite:///{production}"\n'
        f'[staging]\ndatabase_url = "sqlite:///{staging}"\n'
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_sqlite_copy_scrubs_with_consistent_fakes_and_swaps_by_rename(project: Path):
    result = copy("production", "staging")
    staging = project / "staging.sqlite3"
    assert not list(project.glob("*.steep-scratch"))
    assert rows(staging, "SELECT name FROM sqlite_master WHERE name = 'staging_marker'") == []
    assert result.report is not None and result.report.survivors == {
        "users.email": 0,
        "users.name": 0,
        "users.phone": 0,
        "users.password_hash": 0,
        "users.note": 0,
        "invoices.user_email": 0,
    }
    users = rows(staging, "SELECT email, name, phone, password_hash, note FROM users")
    assert len({u[0] for u in users}) == 200
    assert all(u[0].startswith("user_") and u[0].endswith("@example.invalid") for u in users)
    assert all(u[2][0] == "0" and set(u[2][1:]) == {"*"} for u in users)  # masked
    assert all(len(u[3]) == 32 and u[4] == "redacted" for u in users)
    [(joined,)] = rows(
        staging, "SELECT count(*) FROM invoices i JOIN users u ON u.email = i.user_email"
    )
    assert joined == 300  # the same email became the same fake in both tables
    assert rows(staging, "SELECT count(*) FROM sessions") == [(0,)]
    assert rows(project / "production.sqlite3", "SELECT count(*) FROM sessions") == [(1,)]


def test_fakes_are_the_same_from_one_copy_to_the_next_with_a_salt(project: Path, monkeypatch):
    text = (project / "steep.toml").read_text()
    (project / "steep.toml").write_text(text.replace("[data]\n", '[data]\nsalt_env = "SALT"\n'))
    monkeypatch.setenv("SALT", "pepper")
    copy("production", "staging")
    first = rows(project / "staging.sqlite3", "SELECT email, name FROM users ORDER BY id")
    copy("production", "staging")
    assert rows(project / "staging.sqlite3", "SELECT email, name FROM users ORDER BY id") == first


def test_an_unknown_table_stops_before_copying(project: Path):
    text = (project / "steep.toml").read_text()
    (project / "steep.toml").write_text(
        text.replace("[data.scrub.invoices]", "[data.scrub.invoice]")
    )
    with pytest.raises(ScrubError, match=r"\[data.scrub.invoice\]: no table 'invoice'"):
        copy("production", "staging")
    assert rows(project / "staging.sqlite3", "SELECT name FROM sqlite_master") == [
        ("staging_marker",)
    ]


def test_a_missing_database_url_names_the_table_to_add_it_to(project: Path):
    text = (project / "steep.toml").read_text()
    (project / "steep.toml").write_text(text[: text.index("[staging]")])
    with pytest.raises(CopyError, match=r"\[staging\] has no database_url; add database_url"):
        copy("production", "staging")


def test_the_copy_job_runs_in_a_worker_as_a_cron_entry_would_enqueue_it(project, run_worker):
    job = copy_database.enqueue("production", "staging")
    run_worker()
    outcome = job.result(timeout=5)
    assert outcome["steps"] == ["backup", "scrub", "swap"]
    assert outcome["scrubbed_rows"] == {"users": 200, "invoices": 300}
    assert set(outcome["survivors"].values()) == {0}


def test_the_after_command_runs_with_the_targets_url_and_its_failure_is_reported(project: Path):
    import json
    import sys

    script = (
        "import json, os; print(json.dumps([os.environ['STEEP_ENV'], os.environ['DATABASE_URL']]))"
    )
    text = (project / "steep.toml").read_text()
    after = json.dumps([sys.executable, "-c", script])
    (project / "steep.toml").write_text(text.replace("[data]\n", f"[data]\nafter = {after}\n"))
    result = copy("production", "staging")
    assert result.steps[-1] == "after"
    assert json.loads(result.after) == ["staging", f"sqlite:///{project / 'staging.sqlite3'}"]

    failing = json.dumps([sys.executable, "-c", "raise SystemExit('migration 0042 failed')"])
    (project / "steep.toml").write_text(text.replace("[data]\n", f"[data]\nafter = {failing}\n"))
    with pytest.raises(
        CopyError, match=r"the copy is in place, but \[data\] after .* exit 1: migration 0042"
    ):
        copy("production", "staging")


def test_a_keep_condition_the_database_refuses_is_a_clear_error(project: Path):
    text = (project / "steep.toml").read_text()
    (project / "steep.toml").write_text(
        text.replace(
            "[data.scrub.users]", '[data.keep]\nusers = "no_such_column > 1"\n[data.scrub.users]'
        )
    )
    with pytest.raises(ScrubError, match="the scrub failed: no such column: no_such_column"):
        copy("production", "staging")
    assert rows(project / "staging.sqlite3", "SELECT name FROM sqlite_master") == [
        ("staging_marker",)
    ]
