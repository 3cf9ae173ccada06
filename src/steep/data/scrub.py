"""The plan of a copy and the scrub itself: rules checked against the real schema, columns
that look personal, the set-based `UPDATE`s, and the verification that no original value
survived.

The verification keeps a digest of every distinct original value of each scrubbed column
in a temporary table (in the same session, so it never becomes part of the database),
scrubs, then counts the rows whose new value's digest is among them: that count must be 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steep.data.config import DataConfig, Rule
from steep.data.sql import Database, quote

# column names that usually hold personal data (matched on word parts: `billing_email`)
PERSONAL = re.compile(
    r"(^|_)(e?mail|email_address|phone|mobile|tel|fax|name|first_?name|last_?name|surname|"
    r"full_?name|address|street|city|zip|postcode|postal_code|ssn|social_security|iban|"
    r"bic|account_number|card|birth|birthday|dob|birth_?date|passport|national_id|tax_id|"
    r"ip|ip_address|lat|lng|latitude|longitude)($|_)",
    re.IGNORECASE,
)


class ScrubError(Exception):
    """The rules do not fit the database, or the scrub did not remove every original."""


@dataclass
class Plan:
    """What a copy would do, decided before anything is copied."""

    tables: dict[str, list[str]]
    counts: dict[str, int]
    rules: dict[str, dict[str, Rule]]
    truncate: tuple[str, ...]
    keep: dict[str, str]
    unruled_personal: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for table in sorted(self.tables):
            if table in self.truncate:
                action = "truncated (no rows copied)"
            else:
                scrubbed = self.rules.get(table, {})
                action = ", ".join(f"{c}: {r.describe()}" for c, r in scrubbed.items()) or "as is"
                if table in self.keep:
                    action += f"; keeps rows where {self.keep[table]}"
            out.append(f"{table} ({self.counts.get(table, 0):,} rows): {action}")
        return out


def make_plan(db: Database, config: DataConfig, count: bool = True) -> Plan:
    """Check the rules against `db`'s schema; raise ScrubError naming what does not fit."""
    tables = db.tables()
    for table, columns in config.scrub.items():
        if table not in tables:
            raise ScrubError(
                f"[data.scrub.{table}]: no table {table!r} in the source database "
                f"(tables: {', '.join(sorted(tables)) or 'none'})"
            )
        for column in columns:
            if column not in tables[table]:
                raise ScrubError(
                    f"[data.scrub.{table}] {column}: no column {column!r} in table {table!r} "
                    f"(columns: {', '.join(tables[table])})"
                )
    for table in (*config.truncate, *config.keep):
        if table not in tables:
            raise ScrubError(f"[data]: truncate or keep names {table!r}, which is no table")
    for item in config.personal_ok:
        table, _, column = item.partition(".")
        if column not in tables.get(table, []):
            raise ScrubError(f"[data] personal_ok: no column {item!r} (write it as table.column)")
    counts = (
        {t: int(db.scalar(f"SELECT count(*) FROM {quote(t)}")) for t in tables} if count else {}
    )
    plan = Plan(tables, counts, config.scrub, config.truncate, config.keep)
    plan.unruled_personal = [
        f"{table}.{column}"
        for table, columns in tables.items()
        if table not in config.truncate
        for column in columns
        if PERSONAL.search(column)
        and column not in config.scrub.get(table, {})
        and f"{table}.{column}" not in config.personal_ok
    ]
    return plan


def expression(db: Database, column: str, rule: Rule, params: dict[str, Any]) -> str:
    c = quote(column)
    if rule.kind == "null":
        return "NULL"
    if rule.kind == "set":
        name = f"p{len(params)}"
        params[name] = rule.value
        return db.param(name)
    if rule.kind == "sql":
        return f"({db.user_sql(rule.value)})"
    if rule.kind == "hash":
        return db.keyed(c)
    builder: Callable[[str], str] = getattr(db, rule.kind)  # fake_email, fake_name, ...
    return builder(c)


@dataclass
class ScrubReport:
    """What the scrub did: rows per table, seconds, and survivors per column (all 0)."""

    rows: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)  # table.column -> distinct originals
    survivors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds else 0.0


def scrub(
    db: Database,
    plan: Plan,
    salt: str,
    progress: Callable[[str, int], None] | None = None,
) -> ScrubReport:
    """Truncate, keep, scrub and verify in one transaction of `db`; commit only when no
    original value survived (else roll back and raise ScrubError)."""
    report = ScrubReport()
    step = progress or (lambda what, rows: None)
    db.prepare_session()
    db.without_constraint_checks()
    for table in plan.truncate:
        db.execute(f"DELETE FROM {quote(table)}")
    for table, where in plan.keep.items():
        removed = db.execute(f"DELETE FROM {quote(table)} WHERE NOT ({db.user_sql(where)})")
        step(f"kept rows of {table} ({removed:,} removed)", 0)
    columns = [(t, c, r) for t, cols in plan.rules.items() for c, r in cols.items()]
    for n, (table, column, rule) in enumerate(columns):
        c = quote(column)
        keep_out = ""
        params: dict[str, Any] = {}
        if rule.kind == "set" and rule.value is not None:
            params["v"] = str(rule.value)  # an original equal to the constant is no leak
            keep_out = f" AND {db.text(c)} <> {db.param('v')}"
        db.execute(
            f"CREATE TEMP TABLE steep_digest_{n} AS SELECT DISTINCT {db.digest(c)} AS d"
            f" FROM {quote(table)} WHERE {c} IS NOT NULL{keep_out}",
            params,
        )
        report.checked[f"{table}.{column}"] = int(
            db.scalar(f"SELECT count(*) FROM steep_digest_{n}")
        )
    started = time.perf_counter()
    for table, rules in plan.rules.items():
        params = {"salt": salt}
        sets = ", ".join(f"{quote(c)} = {expression(db, c, r, params)}" for c, r in rules.items())
        try:
            report.rows[table] = db.execute(f"UPDATE {quote(table)} SET {sets}", params)
        except Exception as exc:
            db.conn.rollback()  # type: ignore[attr-defined]
            raise ScrubError(f"[data.scrub.{table}]: the scrub failed: {exc}".strip()) from None
        step(f"scrubbed {table}", report.rows[table])
    report.seconds = time.perf_counter() - started
    for n, (table, column, _) in enumerate(columns):
        c = quote(column)
        report.survivors[f"{table}.{column}"] = int(
            db.scalar(
                f"SELECT count(*) FROM {quote(table)}"
                f" WHERE {db.digest(c)} IN (SELECT d FROM steep_digest_{n})"
            )
        )
        db.execute(f"DROP TABLE steep_digest_{n}")
    if leaked := {name: n for name, n in report.survivors.items() if n}:
        db.conn.rollback()  # type: ignore[attr-defined]
        detail = ", ".join(f"{name}: {n:,} rows" for name, n in leaked.items())
        raise ScrubError(f"original values survived the scrub ({detail}); nothing was swapped")
    db.commit()
    step("verified: no original value survived", 0)
    return report
