"""The two databases steep copies, behind one small interface: PostgreSQL (psycopg) and
SQLite (the standard library), each with its own SQL for the scrub rules.

Every rule becomes an SQL expression of the column, run inside the database by one
`UPDATE` per table. The fakes are keyed digests of the original value (with a salt that
never leaves the copying process), so the same email becomes the same fake in every table
and every row: joins and unique constraints still hold, and nobody holding the fake can
test a guess of the original without the salt. SQLite has no digest function, so the
SQLite side registers one (a deterministic SQL function), still called by set-based SQL.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

# short on purpose: a fake name must fit the narrowest name column seen in the field
FIRST_NAMES = (
    "Ada", "Alan", "Ana", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jan",
    "Kai", "Lea", "Max", "Mia", "Ned", "Noa", "Omar", "Pia", "Raj", "Rosa", "Sam", "Tess",
    "Uma", "Vic", "Wen", "Yara", "Zoe", "Leo", "Ines", "Otto",
)  # fmt: skip
LAST_NAMES = (
    "Abbot", "Baker", "Costa", "Dahl", "Evans", "Fox", "Gray", "Hale", "Ito", "Jonas",
    "Khan", "Lund", "Moss", "Nagy", "Ortiz", "Park", "Quinn", "Reyes", "Silva", "Tan",
    "Ueda", "Vance", "Wolf", "Xu", "Young", "Zhou", "Berg", "Cole", "Diaz", "Ng", "Roy", "Sato",
)  # fmt: skip


def quote(name: str) -> str:
    """An identifier, quoted the same way in PostgreSQL and SQLite."""
    return '"' + name.replace('"', '""') + '"'


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


class Database:
    """An open connection to one database, with its dialect's expressions."""

    kind = ""

    def tables(self) -> dict[str, list[str]]:
        raise NotImplementedError

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        raise NotImplementedError

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def param(self, name: str) -> str:
        raise NotImplementedError

    def user_sql(self, text: str) -> str:
        return text

    def prepare_session(self) -> None:
        """Before the scrub's first statement: memory for its temporary tables and joins."""

    def without_constraint_checks(self) -> None:
        """For the scrub's transaction: a key column (users.email) and the columns that
        reference it (orders.user_email) become the same fakes, but only once both are
        updated, so the checks in between would fail."""
        raise NotImplementedError

    # -- expressions of a column `c` (already quoted) -------------------------------
    def text(self, c: str) -> str:
        return f"CAST({c} AS TEXT)"

    def digest(self, c: str) -> str:
        """An unkeyed digest, for the verification's comparison only (never stored)."""
        raise NotImplementedError

    def keyed(self, c: str) -> str:
        raise NotImplementedError

    def index(self, c: str, n: int, offset: int = 0) -> str:
        """A number in [0, n) derived from the keyed digest (from its hex digits at offset)."""
        raise NotImplementedError

    def fake_email(self, c: str) -> str:
        return f"'user_' || substr({self.keyed(c)}, 1, 16) || '@example.invalid'"

    def fake_name(self, c: str) -> str:
        raise NotImplementedError

    def fake_phone(self, c: str) -> str:
        raise NotImplementedError

    def mask(self, c: str) -> str:
        raise NotImplementedError


class Postgres(Database):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, connect_timeout=10)

    def tables(self) -> dict[str, list[str]]:
        rows = self.conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
            " ORDER BY c.table_name, c.ordinal_position"
        ).fetchall()
        found: dict[str, list[str]] = {}
        for table, column in rows:
            found.setdefault(table, []).append(column)
        return found

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        cursor = self.conn.execute(sql.encode(), params)  # bytes: psycopg's LiteralString
        return cursor.rowcount

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        row = self.conn.execute(sql.encode(), params).fetchone()
        return row[0] if row else None

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def param(self, name: str) -> str:
        return f"%({name})s"

    def user_sql(self, text: str) -> str:
        return text.replace("%", "%%")  # a `LIKE 'a%'` in a rule is not a placeholder

    def prepare_session(self) -> None:
        # the digests of a million values and the joins on them fit in memory instead of
        # spilling to temporary files (temp_buffers only counts before a temp table exists)
        self.conn.execute("SET temp_buffers = '256MB'")
        self.conn.execute("SET work_mem = '256MB'")

    def without_constraint_checks(self) -> None:
        import psycopg

        # foreign keys are triggers, which the replica role does not fire (a superuser's
        # or the database owner's right on managed services); without it, the keys are
        # checked and a failure names the constraint
        try:
            with self.conn.transaction():
                self.conn.execute("SET LOCAL session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            return
        self.conn.execute("SET session_replication_role = replica")

    def digest(self, c: str) -> str:
        return f"md5({self.text(c)})::uuid"  # 16 bytes instead of 32 hex digits

    def keyed(self, c: str) -> str:
        return f"md5({self.param('salt')} || {self.text(c)})"

    def index(self, c: str, n: int, offset: int = 0) -> str:
        # 7 hex digits: 28 bits, always a non-negative int
        hex7 = f"substr({self.keyed(c)}, {1 + offset}, 7)"
        return f"mod(('x' || {hex7})::bit(28)::int, {n})"

    def fake_name(self, c: str) -> str:
        first = f"(ARRAY[{_sql_list(FIRST_NAMES)}])[1 + {self.index(c, len(FIRST_NAMES))}]"
        last = f"(ARRAY[{_sql_list(LAST_NAMES)}])[1 + {self.index(c, len(LAST_NAMES), 7)}]"
        return f"{first} || ' ' || {last}"

    def fake_phone(self, c: str) -> str:
        return f"'+1-555-' || lpad({self.index(c, 10_000_000, 14)}::text, 7, '0')"

    def mask(self, c: str) -> str:
        t = self.text(c)
        return f"left({t}, 1) || repeat('*', greatest(length({t}) - 1, 0))"


def _sqlite_md5(*parts: Any) -> str | None:
    if any(part is None for part in parts):
        return None
    return hashlib.md5("".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()


def _sqlite_pick(digest: str | None, offset: int, n: int) -> int | None:
    return None if digest is None else int(digest[offset : offset + 7], 16) % n


class SQLite(Database):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level="DEFERRED")
        self.conn.create_function("steep_md5", -1, _sqlite_md5, deterministic=True)
        self.conn.create_function("steep_pick", 3, _sqlite_pick, deterministic=True)

    def tables(self) -> dict[str, list[str]]:
        names = [
            row[0]
            for row in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            name: [row[1] for row in self.conn.execute(f"PRAGMA table_info({quote(name)})")]
            for name in names
        }

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        return self.conn.execute(sql, params or {}).rowcount

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        row = self.conn.execute(sql, params or {}).fetchone()
        return row[0] if row else None

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def param(self, name: str) -> str:
        return f":{name}"

    def without_constraint_checks(self) -> None:
        self.conn.execute("PRAGMA foreign_keys = OFF")  # off by default; said for clarity

    def digest(self, c: str) -> str:
        return f"steep_md5({c})"

    def keyed(self, c: str) -> str:
        return f"steep_md5({self.param('salt')}, {c})"

    def index(self, c: str, n: int, offset: int = 0) -> str:
        return f"steep_pick({self.keyed(c)}, {offset}, {n})"

    def _pick(self, names: tuple[str, ...], index: str) -> str:
        cases = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(names))
        return f"(CASE {index} {cases} END)"

    def fake_name(self, c: str) -> str:
        first = self._pick(FIRST_NAMES, self.index(c, len(FIRST_NAMES)))
        last = self._pick(LAST_NAMES, self.index(c, len(LAST_NAMES), 7))
        return f"{first} || ' ' || {last}"

    def fake_phone(self, c: str) -> str:
        return f"'+1-555-' || substr('0000000' || {self.index(c, 10_000_000, 14)}, -7)"

    def mask(self, c: str) -> str:
        t = self.text(c)
        return f"substr({t}, 1, 1) || substr('{'*' * 64}', 1, max(length({t}) - 1, 0))"
