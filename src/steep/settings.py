"""Steep's settings: defaults, then `steep.toml`, then `STEEP_*` environment variables.

Precedence, lowest first: defaults, top-level keys of steep.toml, the file's table for
the current environment (`[development]`, `[staging]`, `[production]`), environment
variables, `configure()` overrides. Every error names where the bad value came from
(file and line, or the variable): a worker that refuses to start should point at the
typo, not leave the reader guessing. See docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENVIRONMENTS",
    "ConfigError",
    "Settings",
    "configure",
    "get_settings",
    "load_settings",
    "redacted_url",
    "reset_settings",
]

ENVIRONMENTS = ("development", "staging", "production")
CONFIG_FILE = "steep.toml"
_ENV_VARS = {
    f"STEEP_{key.upper()}": key
    for key in (
        "redis_url",
        "data_dir",
        "namespace",
        "log_level",
        "log_format",
        "worker_start",
        "web_username",
        "web_password",
        "web_token",
        "web_read_only",
    )
}
# values that are never shown (repr, logs, `steep status`)
SECRETS = ("web_password", "web_token")
_TYPE_NAMES = {
    bool: "boolean",
    str: "string",
    int: "integer",
    float: "float",
    list: "array",
    tuple: "array",
    dict: "table",
}


class ConfigError(Exception):
    """A setting is unknown, malformed or out of range; the message says where and why."""


class Invalid(Exception):
    """A value failed a check; args are (what it must be, what it was). `path` leads to
    the bad part inside a table-valued setting (`[cron.NAME]`), for its name and line."""

    def __init__(self, what: str, got: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(what, got)
        self.path = path


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("a string", _type_name(value))
    return value


def _choice(*options: str, upper: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _string(value)
        if (text.upper() if upper else text) not in options:
            raise Invalid("one of " + ", ".join(options), repr(text))
        return text.upper() if upper else text

    return check


def _number(kind: type[int] | type[float], low: int, above: bool = False) -> Callable[[Any], Any]:
    """A check for an integer (or a number of seconds) >= low, or > low when `above`."""
    accepted = int if kind is int else (int, float)

    def check(value: Any) -> Any:
        # bool is an int subclass, but `concurrency = true` is a mistake, not a 1.
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise Invalid("an integer" if kind is int else "a number", _type_name(value))
        if not math.isfinite(value):
            raise Invalid("a finite number", repr(value))
        if value < low or (above and value == low):
            raise Invalid(f"greater than {low}" if above else f"at least {low}", repr(value))
        return kind(value)

    return check


def _name(value: Any) -> str:
    # Braces would break the Redis Cluster hash tags in key names (see keys.py).
    if not re.fullmatch(r"[^\s{}]+", text := _string(value)):
        raise Invalid("a non-empty name without spaces, '{' or '}'", repr(text))
    return text


def _queues(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise Invalid("an array of queue names", _type_name(value))
    if odd := [item for item in value if not isinstance(item, str)]:
        raise Invalid("an array of queue names", f"an array containing {_type_name(odd[0])}")
    names = tuple(_name(item) for item in value)
    if not names or len(set(names)) != len(names):
        raise Invalid("a non-empty array of distinct queue names", repr(list(names)))
    return names


def _redis_url(value: Any) -> str | None:
    if not (text := None if value is None else _string(value)):
        return None
    if not text.lower().startswith(("redis://", "rediss://", "unix://")):
        raise Invalid("a redis://, rediss:// or unix:// URL", repr(redacted_url(text)))
    return text


def _data_dir(value: Any) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise Invalid("a path", _type_name(value))
    if not os.fspath(value):
        raise Invalid("a non-empty path", "''")
    return Path(value).expanduser()


def _optional_string(value: Any) -> str | None:
    return None if value is None else (_string(value) or None)


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.lower() in ("1", "true", "yes", "on")
    raise Invalid("true or false", repr(value) if isinstance(value, str) else _type_name(value))


def _import_paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise Invalid('an array of "module:attribute" paths', _type_name(value))
    for item in value:
        text = _string(item)
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", text):
            raise Invalid('an array of "module:attribute" paths', repr(text))
    return tuple(value)


def _as_given(value: Any) -> Any:
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "env": _choice(*ENVIRONMENTS),
    "redis_url": _redis_url,
    "data_dir": _data_dir,
    "namespace": _name,
    "queues": _queues,
    "concurrency": _number(int, 1),
    "processes": _number(int, 0),
    "worker_start": _choice("fork", "spawn"),
    "heartbeat_interval": _number(float, 0, above=True),
    "heartbeat_timeout": _number(float, 0, above=True),
    "shutdown_timeout": _number(float, 0),
    "schedule_poll_interval": _number(float, 0, above=True),
    "dead_ttl": _number(float, 0, above=True),
    "dead_max_jobs": _number(int, 1),
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True),
    "log_format": _choice("text", "json"),
    "fsync": _choice("always", "everysec", "no"),
    "middleware": _import_paths,
    "web_username": _name,
    "web_password": _optional_string,
    "web_token": _optional_string,
    "web_read_only": _flag,
    # checked by the feature that owns it (register_check)
    "cron": _as_given,
}
FIELDS = tuple(_CHECKS)


def register_check(key: str, check: Callable[[Any], Any]) -> None:
    """A feature's check of its own table-valued setting (cron's `[cron]` table): called
    with the value as given, returns it checked, raises `Invalid` naming the bad part."""
    if key not in _CHECKS:
        raise KeyError(f"no setting named {key!r}")
    _CHECKS[key] = check


def _must(key: str, exc: Invalid) -> str:
    return f"'{'.'.join((key, *exc.path))}' must be {exc.args[0]}, got {exc.args[1]}"


def _heartbeat_problem(interval: float, timeout: float) -> str | None:
    if timeout > interval:
        return None
    return (
        f"'heartbeat_timeout' ({timeout:g}) must be greater than "
        f"'heartbeat_interval' ({interval:g})"
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything steep reads from its configuration; values are validated on construction."""

    env: str = "development"
    redis_url: str | None = None
    data_dir: Path = Path(".steep")
    namespace: str = "steep"
    queues: tuple[str, ...] = ("default",)
    concurrency: int = 10
    processes: int = 0
    # how the supervisor starts worker processes: "fork" (a copy of the supervisor, which
    # has imported the application already: fast start, shared memory) or "spawn" (a new
    # interpreter that imports everything again)
    worker_start: str = "fork"
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 10.0
    shutdown_timeout: float = 25.0
    schedule_poll_interval: float = 0.5
    dead_ttl: float = 15552000.0
    dead_max_jobs: int = 10000
    log_level: str = "INFO"
    log_format: str = "text"
    fsync: str = "everysec"
    middleware: tuple[str, ...] = ()
    # the dashboard (steep web, steep.web.create_app): HTTP basic user and password,
    # and/or a bearer token; read-only hides every action
    web_username: str = "steep"
    web_password: str | None = None
    web_token: str | None = None
    web_read_only: bool = False
    cron: Any = ()  # the [cron] table: a tuple of steep.features.cron.CronEntry once checked

    def __post_init__(self) -> None:
        for key, check in _CHECKS.items():
            try:
                value = check(getattr(self, key))
            except Invalid as exc:
                raise ConfigError(f"Settings: {_must(key, exc)}") from None
            if key == "data_dir":
                # Absolute, so a later chdir cannot send processes to different servers.
                value = Path(os.path.abspath(value))
            object.__setattr__(self, key, value)
        if problem := _heartbeat_problem(self.heartbeat_interval, self.heartbeat_timeout):
            raise ConfigError(f"Settings: {problem}")

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks; the password in redis_url must not.
        shown = {key: getattr(self, key) for key in _CHECKS}
        shown["redis_url"] = self.redis_url and redacted_url(self.redis_url)
        for key in SECRETS:
            if shown[key] is not None:
                shown[key] = "***"
        return f"Settings({', '.join(f'{key}={value!r}' for key, value in shown.items())})"


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Settings)}


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


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
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


def _toml_error(shown: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
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

    def __init__(self, path: Path, shown: str) -> None:
        self.path, self.shown = path, shown
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
            raise _toml_error(shown, text, exc) from None
        self.lines = _key_lines(text)

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
            merged = {**_DEFAULTS, **top, **table}
            if problem := _heartbeat_problem(
                merged["heartbeat_interval"], merged["heartbeat_timeout"]
            ):
                beats = ("heartbeat_timeout", "heartbeat_interval")
                key = next((k for k in beats if k in table), None)
                scope, suffix = ((name,), f" in [{name}]") if key else ((), "")
                key = key or next(k for k in beats if k in top)
                raise ConfigError(f"{self.where(*scope, key)}: {problem}{suffix}")
        selected = env or top.pop("env", None) or "development"
        top.pop("env", None)
        return selected, {**top, **tables[selected]}


def load_settings(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read steep.toml (from `cwd`, or the file `STEEP_CONFIG` names) and `STEEP_*` variables."""
    base = Path(os.path.abspath(cwd if cwd is not None else os.getcwd()))
    env_vars = os.environ if environ is None else environ

    def var(name: str) -> str | None:
        # An empty variable counts as unset, the way compose files and CI often pass them.
        return env_vars.get(name) or None

    def from_var(name: str, key: str, value: str) -> Any:
        try:
            return _CHECKS[key](value)
        except Invalid as exc:
            raise ConfigError(f"{name}: {exc.args[1]} is not {exc.args[0]}") from None

    env = from_var("STEEP_ENV", "env", raw) if (raw := var("STEEP_ENV")) else None
    values: dict[str, Any] = {}
    if (config := var("STEEP_CONFIG")) is not None:
        path = base / Path(config).expanduser()
        if not path.is_file():
            raise ConfigError(f"STEEP_CONFIG: no such file: {path}")
        env, values = _FileReader(path, config).read(env)
    elif (base / CONFIG_FILE).is_file():
        env, values = _FileReader(base / CONFIG_FILE, CONFIG_FILE).read(env)
    for name, key in _ENV_VARS.items():
        if (raw := var(name)) is not None:
            values[key] = from_var(name, key, raw)
    # A data dir from the environment or the default is relative to cwd.
    values["data_dir"] = base / values.get("data_dir", _DEFAULTS["data_dir"])
    return Settings(env=env or "development", **values)


_lock = threading.Lock()
_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded from the file and environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = load_settings()
        return _current


def configure(settings: Settings | None = None, **overrides: Any) -> Settings:
    """Replace the process-wide settings with `settings` (or the current ones) plus overrides."""
    global _current
    for key in overrides:
        if key not in _CHECKS:
            raise ConfigError(f"Settings: unknown setting '{key}'{_did_you_mean(key, FIELDS)}")
    new = dataclasses.replace(settings if settings is not None else get_settings(), **overrides)
    with _lock:
        _current = new
    return new


def reset_settings() -> None:
    """Forget the cached settings; the next get_settings() reads file and environment again."""
    global _current
    with _lock:
        _current = None


def redacted_url(url: str) -> str:
    """`url` with its password (in the user info or a `password=` query) replaced by ***."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match[2].partition(":")
        return f"{match[1]}{user}{colon}***@" if colon else match[0]

    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@", hide, url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)
