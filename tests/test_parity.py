"""`steep env diff`: two environments' settings, app settings and variable names compared,
intended differences apart from unexpected ones, exit 1 on an unexpected one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONFIG = """
concurrency = 10
[mail]
host = "smtp.example.com"
[app]
payment_mode = "live"
robots = "index"
[parity]
allow = ["DATABASE_URL", "mail_*", "app.robots", "STRIPE_*"]
env_files = { staging = ".env.staging", production = ".env.production" }

[staging]
database_url = "postgresql://app:staging-pw@db.staging/shop"
web_password = "one"
[staging.mail]
intercept_to = ["team@example.com"]
[staging.app]
payment_mode = "sandbox"
robots = "noindex"

[production]
database_url = "postgresql://app:prod-pw@db.prod/shop"
web_password = "two"
concurrency = 20
"""


def steep(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("STEEP_ENV", None)
    env.pop("STEEP_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "steep", "env", "diff", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "steep.toml").write_text(CONFIG)
    (tmp_path / ".env.staging").write_text("DATABASE_URL=x\nSTRIPE_KEY=sk_test\nSECRET_KEY=a\n")
    (tmp_path / ".env.production").write_text(
        "export DATABASE_URL=y\nSECRET_KEY=b\nSENTRY_DSN=https://x\n"
    )
    return tmp_path


def test_unexpected_and_intended_differences_are_told_apart(project: Path):
    done = steep(project, "staging", "production", "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    unexpected = {(d["kind"], d["name"]): (d["left"], d["right"]) for d in report["unexpected"]}
    intended = {(d["kind"], d["name"]) for d in report["intended"]}
    assert unexpected == {
        ("setting", "concurrency"): ("10", "20"),
        ("setting", "web_password"): ("*** (differs)", "*** (differs)"),
        ("app", "app.payment_mode"): ("sandbox", "live"),
        ("variable", "SENTRY_DSN"): ("(missing)", "set"),
    }
    assert intended == {
        ("setting", "database_url"),
        ("setting", "mail.intercept_to"),
        ("app", "app.robots"),
        ("variable", "STRIPE_KEY"),
    }
    assert "prod-pw" not in done.stdout and "staging-pw" not in done.stdout
    assert "sk_test" not in done.stdout  # variable names only, never values


def test_no_unexpected_difference_exits_0(project: Path):
    text = CONFIG.replace('"STRIPE_*"]', '"STRIPE_*", "concurrency", "web_password", "app.*"]')
    (project / "steep.toml").write_text(text)
    (project / ".env.staging").write_text("DATABASE_URL=x\nSENTRY_DSN=a\n")
    (project / ".env.production").write_text("DATABASE_URL=y\nSENTRY_DSN=b\n")
    done = steep(project, "staging", "production")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intended differences" in done.stdout and "unexpected" not in done.stdout


def test_a_broken_parity_table_is_one_line_naming_the_file_and_line(project: Path):
    (project / "steep.toml").write_text('[parity]\nallow = "DATABASE_URL"\n')
    done = steep(project, "staging", "production")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: steep.toml:2: 'parity.allow' must be an array")
    assert len(done.stderr.strip().splitlines()) == 1
