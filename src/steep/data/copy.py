"""`steep data copy <from> <to>` and `steep data check <env>`: the whole of a copy, from
the environments' settings to the swap.

Order, so that a failure anywhere leaves the target as it was: read both environments'
`database_url`; connect to the source and check the rules against its schema (an unknown
table or column, a personal-looking column no rule mentions: stop before copying); then the
backend's dump/restore (PostgreSQL) or backup (SQLite) into a scratch database, the scrub
and its verification there, the swap, and the `after` command.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from steep.data import postgres, sqlite
from steep.data.config import DataConfig, parse
from steep.data.postgres import CopyError
from steep.data.scrub import Plan, ScrubError, ScrubReport, make_plan, scrub
from steep.data.sql import Database, Postgres, SQLite
from steep.settings import Settings, load_settings

__all__ = ["CopyError", "CopyResult", "ScrubError", "copy", "open_database", "plan_for"]


@dataclass
class CopyResult:
    plan: Plan
    report: ScrubReport | None = None
    steps: list[str] = field(default_factory=list)
    after: str = ""


def environment(name: str, cwd: Path | None = None) -> Settings:
    return load_settings(cwd, environ={**os.environ, "STEEP_ENV": name})


def database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise CopyError(
            f"[{settings.env}] has no database_url; add "
            f'database_url = "postgresql://..." (or "sqlite:///path") to it in steep.toml'
        )
    return settings.database_url


def open_database(url: str) -> Database:
    try:
        if url.startswith("sqlite:///"):
            path = sqlite.path_of(url)
            if not path.is_file():
                raise CopyError(f"no SQLite database at {path}")
            return SQLite(str(path))
        return Postgres(url)
    except CopyError:
        raise
    except Exception as exc:
        from steep.settings import redacted_url

        raise CopyError(f"cannot connect to {redacted_url(url)}: {exc}".strip()) from None


def plan_for(source_url: str, config: DataConfig, count: bool = True) -> Plan:
    db = open_database(source_url)
    try:
        return make_plan(db, config, count=count)
    finally:
        db.close()


def _salt(config: DataConfig) -> str:
    if not config.salt_env:
        return secrets.token_hex(16)  # fakes consistent within this copy, new next time
    salt = os.environ.get(config.salt_env)
    if not salt:
        raise CopyError(f"[data] salt_env: the variable {config.salt_env} is not set")
    return salt


def copy(
    from_env: str,
    to_env: str,
    *,
    dry_run: bool = False,
    cwd: Path | None = None,
    progress: Callable[[str, int], None] | None = None,
    plan: Plan | None = None,
) -> CopyResult:
    """Copy `from_env`'s database over `to_env`'s, scrubbed by the `[data]` rules of the
    target environment's settings."""
    if from_env == to_env:
        raise CopyError("the source and the target are the same environment")
    target_settings = environment(to_env, cwd)
    source_url = database_url(environment(from_env, cwd))
    target_url = database_url(target_settings)
    if source_url == target_url:
        raise CopyError(f"{from_env} and {to_env} have the same database_url")
    config = parse(target_settings.data)
    if source_url.startswith("sqlite:") != target_url.startswith("sqlite:"):
        raise CopyError("both databases must be PostgreSQL, or both SQLite")
    plan = plan or plan_for(source_url, config)  # a dry run's plan, shown before asking
    result = CopyResult(plan)
    if plan.unruled_personal:
        raise ScrubError(
            "columns that look personal have no rule: "
            + ", ".join(plan.unruled_personal)
            + "; give each a rule in [data.scrub.<table>] or list it in [data] personal_ok"
        )
    if dry_run:
        return result
    salt = _salt(config)
    report = progress or (lambda what, rows: None)

    def step(name: str) -> None:
        result.steps.append(name)
        report(name, 0)

    def scrub_in(url: str) -> ScrubReport:
        db = open_database(url)
        try:
            return scrub(db, plan, salt, report)
        except (ScrubError, CopyError):
            raise
        except Exception as exc:  # a [data.keep] condition the database refuses, say
            raise ScrubError(f"the scrub failed: {exc}".strip()) from None
        finally:
            db.close()

    if source_url.startswith("sqlite:"):
        result.report = sqlite.copy(source_url, target_url, scrub_in, step)
    else:
        with tempfile.TemporaryDirectory(prefix="steep-data-") as work:
            result.report = postgres.copy(
                source_url, target_url, config, Path(work), scrub_in, step
            )
    if config.after:
        step("after")
        env = {**os.environ, "STEEP_ENV": to_env, "DATABASE_URL": target_url}
        done = subprocess.run(list(config.after), env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise CopyError(
                f"the copy is in place, but [data] after ({config.after[0]}) failed "
                f"with exit {done.returncode}: {tail[-1] if tail else ''}".rstrip(": ")
            )
        result.after = done.stdout
    return result


def check(env: str, cwd: Path | None = None) -> tuple[Plan, dict[str, int]]:
    """The verification alone, on one environment's database: the rules fit its schema,
    and the scrubbed columns look scrubbed (returns rows that do not, per column)."""
    settings = environment(env, cwd)
    config = parse(settings.data)
    db = open_database(database_url(settings))
    try:
        plan = make_plan(db, config)
        unscrubbed: dict[str, int] = {}
        for table, rules in config.scrub.items():
            for column, rule in rules.items():
                condition = _looks_unscrubbed(db, column, rule.kind)
                if condition:
                    unscrubbed[f"{table}.{column}"] = int(
                        db.scalar(f'SELECT count(*) FROM "{table}" WHERE {condition}')
                    )
        return plan, unscrubbed
    finally:
        db.close()


def _looks_unscrubbed(db: Database, column: str, kind: str) -> str:
    c = f'"{column}"'
    if kind == "null":
        return f"{c} IS NOT NULL"
    if kind == "fake_email":
        return f"{c} IS NOT NULL AND {db.text(c)} NOT LIKE 'user\\_%@example.invalid' ESCAPE '\\'"
    if kind == "fake_phone":
        return f"{c} IS NOT NULL AND {db.text(c)} NOT LIKE '+1-555-%'"
    if kind == "hash":
        return f"{c} IS NOT NULL AND length({db.text(c)}) <> 32"
    return ""  # names, masks, constants and expressions have no shape to check
