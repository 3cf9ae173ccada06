"""Reading steep.toml: every key checked, every error naming the file and the line.

tomllib gives values but no positions, so a scan of the text maps each key to its
line; a bad value, an unknown key or table, a TOML syntax error all point there.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steep.settings_checks import (
    _CHECKS,
    ENVIRONMENTS,
    FIELDS,
    ConfigError,
    Invalid,
    _heartbeat_problem,
    _must,
    _type_name,
)


def _did_you_mean(
    word: str, candidates: tuple[str, ...], form: str = "'{}'", cutoff: float = 0.6
) -> str:
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    return f" (did you mean {form.format(match[0])}?)" if match else ""


_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_TABLE_RE = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_ARRAY_TABLE_RE = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_ASSIGN_RE = re.compile(rf"\s*({_DOTTED})\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(
        json.loads(token) if token[0] == '"' else token.strip("'")
        for token in re.findall(_KEY, dotted)
    )


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each table header and key (as a full dotted path) to its 1-based line.

    tomllib gives values but no positions; this scan of the text supplies them.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string: str | None = None  # inside a multi-line string, `key = ` lines are text
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            in_string = None if line.count(in_string) % 2 else in_string
            continue
        if match := _ARRAY_TABLE_RE.match(line) or _TABLE_RE.match(line):
            table = path = _split_key(match[1])
        elif match := _ASSIGN_RE.match(line):
            path = table + _split_key(match[1])
        else:
            continue
        lines.setdefault(path, number)
        in_string = next((q for q in ('"""', "'''") if line.count(q) % 2), None)
    return lines


def toml_error(shown: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message, line = str(exc), None
    if match := re.search(r"\s*\(at line (\d+), column (\d+)\)$", message):
        line = int(match[1])
        message = f"{message[: match.start()]} (column {match[2]})"
    elif message.endswith("(at end of document)"):
        message = message.removesuffix("(at end of document)").rstrip()
        line = max(1, len(text.splitlines()))
    where = f"{shown}:{line}" if line else shown
    return ConfigError(f"{where}: invalid TOML: {message[:1].lower()}{message[1:]}")


class _FileReader:
    """Validates a parsed steep.toml, naming the file and line in every error."""

    def __init__(self, path: Path, shown: str, defaults: Mapping[str, Any]) -> None:
        self.path, self.shown = path, shown
        self.defaults = defaults  # every setting's default, for checks across settings
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{shown}:{line}: invalid TOML: not UTF-8 text") from None
        try:
            self.doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise toml_error(shown, text, exc) from None
        self.lines = key_lines(text)

    def where(self, *path: str) -> str:
        # A key inside an inline table has no line of its own: use the table's.
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return f"{self.shown}:{self.lines[path[:end]]}"
        return self.shown

    def check(self, table: tuple[str, ...], items: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        inside = f" inside [{'.'.join(table)}]" if table else ""
        for key, value in items.items():
            where = self.where(*table, key)
            if not table and key in ENVIRONMENTS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: '{key}' must be a table, got {_type_name(value)}")
            elif table and key == "env":
                raise ConfigError(f"{where}: 'env' cannot be set{inside}; use STEEP_ENV")
            elif key not in _CHECKS and isinstance(value, dict):
                hint = (
                    ""
                    if table
                    else _did_you_mean(key, ENVIRONMENTS, "[{}]", cutoff=0.5)
                    or " (the tables are [development], [staging] and [production])"
                )
                raise ConfigError(f"{where}: unknown table [{'.'.join((*table, key))}]{hint}")
            elif key not in _CHECKS:
                hint = _did_you_mean(key, FIELDS)
                raise ConfigError(f"{where}: unknown setting '{key}'{inside}{hint}")
            else:
                try:
                    values[key] = _CHECKS[key](value)
                except Invalid as exc:
                    where = self.where(*table, key, *exc.path)
                    raise ConfigError(f"{where}: {_must(key, exc)}") from None
        if "data_dir" in values:
            # A path in the file is relative to the file, wherever steep is started from.
            values["data_dir"] = self.path.parent / values["data_dir"]
        return values

    def read(self, env: str | None) -> tuple[str, dict[str, Any]]:
        """The selected environment and the file's merged values for it."""
        top = self.check((), self.doc)
        tables = {name: self.check((name,), self.doc.get(name, {})) for name in ENVIRONMENTS}
        # Every environment is checked, so a bad [production] fails on a laptop, not on deploy.
        for name, table in tables.items():
            merged = {**self.defaults, **top, **table}
            if problem := _heartbeat_problem(
                merged["heartbeat_interval"], merged["heartbeat_timeout"]
            ):
                beats = ("heartbeat_timeout", "heartbeat_interval")
                key = next((k for k in beats if k in table), None)
                scope, suffix = ((name,), f" in [{name}]") if key else ((), "")
                key = key or next(k for k in beats if k in top)
                raise ConfigError(f"{self.where(*scope, key)}: {problem}{suffix}")
        for name in ("", *ENVIRONMENTS):
            found = tables[name] if name else top
            given = [k for k in ("redis_url", "sentinel", "cluster") if found.get(k)]
            if len(given) > 1:
                where = self.where(*((name,) if name else ()), given[1])
                shown = " and ".join(f"'{k}'" if k == "redis_url" else f"[{k}]" for k in given)
                raise ConfigError(f"{where}: {shown} both say where Redis is: keep one")
        selected = env or top.pop("env", None) or "development"
        top.pop("env", None)
        merged = {**top, **tables[selected]}
        for key, value in tables[selected].items():
            # a table-valued setting in [<env>] refines the top-level one ([staging.mail]
            # over [mail]) rather than replacing it
            if isinstance(value, dict) and isinstance(top.get(key), dict):
                merged[key] = {**top[key], **value}
        return selected, merged
