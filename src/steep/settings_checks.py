"""The check of every setting: what each value must be, and the error that says so.

A check takes a value as given (from steep.toml, a `STEEP_*` variable or `configure()`)
and returns it in its final type, or raises `Invalid` with what it must be and what it
was; the caller adds where the value came from. Features check their own table-valued
settings (cron's `[cron]`) through `register_check`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        "log_app",
        "worker_start",
        "worker_mode",
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
    from steep.topology import TopologyError, parse_topology

    try:
        if parse_topology(text) is not None:
            return text
    except TopologyError as exc:
        raise Invalid(f"a usable URL ({exc})", repr(redacted_url(text))) from None
    if not text.lower().startswith(("redis://", "rediss://", "unix://")):
        raise Invalid(
            "a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL",
            repr(redacted_url(text)),
        )
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


def _database_url(value: Any) -> str | None:
    if not (text := None if value is None else _string(value)):
        return None
    if not text.lower().startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise Invalid("a postgresql:// or sqlite:/// URL", repr(redacted_url(text)))
    return text


def _app_table(value: Any) -> Any:
    if value is not None and not isinstance(value, dict):
        raise Invalid("a table ([app])", _type_name(value))
    return value


def _optional_table(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise Invalid("a table", _type_name(value))


def _as_given(value: Any) -> Any:
    return value


_TOPOLOGY_KEYS = {
    "sentinel": (
        "hosts",
        "service",
        "db",
        "username",
        "password_env",
        "sentinel_password_env",
        "tls",
    ),
    "cluster": ("hosts", "username", "password_env", "tls"),
}


def _topology_table(kind: str) -> Callable[[Any], dict[str, Any] | None]:
    """`[sentinel]` (hosts, service, db, username, password_env, sentinel_password_env,
    tls) or `[cluster]` (hosts, username, password_env, tls): the same as a
    redis+sentinel:// or redis+cluster:// URL, the passwords named by variable."""
    known = _TOPOLOGY_KEYS[kind]

    def check(value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Invalid("a table", _type_name(value))
        for key in value:
            if key not in known:
                raise Invalid(f"a table of {', '.join(known)}", f"the key {key!r}", (key,))
        hosts = value.get("hosts")
        if (
            not isinstance(hosts, list)
            or not hosts
            or not all(isinstance(h, str) and re.fullmatch(r"\[?[\w.:-]+\]?:\d+", h) for h in hosts)
        ):
            raise Invalid('a list of "host:port" strings', repr(hosts), ("hosts",))
        if kind == "sentinel" and not (isinstance(value.get("service"), str) and value["service"]):
            raise Invalid(
                "the name the sentinels monitor the primary under",
                repr(value.get("service")),
                ("service",),
            )
        db = value.get("db", 0)
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            raise Invalid("a database number >= 0", repr(db), ("db",))
        for key in ("username", "password_env", "sentinel_password_env"):
            if key in value and not (isinstance(value[key], str) and value[key]):
                raise Invalid("a non-empty string", repr(value[key]), (key,))
        for key in ("password_env", "sentinel_password_env"):
            if key in value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value[key]):
                raise Invalid("the name of an environment variable", repr(value[key]), (key,))
        if not isinstance(value.get("tls", False), bool):
            raise Invalid("true or false", repr(value["tls"]), ("tls",))
        return dict(value)

    return check


def topology_url(kind: str, table: dict[str, Any], environ: Any = os.environ) -> str:
    """The redis+sentinel:// or redis+cluster:// URL a `[sentinel]`/`[cluster]` table
    means, its passwords read from the variables the table names."""
    from urllib.parse import quote

    def secret(key: str) -> str | None:
        name = table.get(key)
        if name is None:
            return None
        value = environ.get(name)
        if not value:
            raise ConfigError(f"[{kind}] {key}: the variable {name} is not set")
        return str(value)

    password, user = secret("password_env"), table.get("username")
    auth = ""
    if password is not None or user:
        auth = f"{quote(user or '', safe='')}:{quote(password or '', safe='')}@"
    scheme = ("rediss+" if table.get("tls") else "redis+") + kind
    url = f"{scheme}://{auth}{','.join(table['hosts'])}"
    if kind == "sentinel":
        url += f"/{quote(table['service'], safe='')}/{table.get('db', 0)}"
        if (sentinel := secret("sentinel_password_env")) is not None:
            url += f"?sentinel_password={quote(sentinel, safe='')}"
    return url


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "env": _choice(*ENVIRONMENTS),
    "redis_url": _redis_url,
    "data_dir": _data_dir,
    "namespace": _name,
    "queues": _queues,
    "concurrency": _number(int, 1),
    "processes": _number(int, 0),
    "worker_start": _choice("fork", "spawn"),
    "worker_mode": _choice("auto", "threads", "loop"),
    "heartbeat_interval": _number(float, 0, above=True),
    "heartbeat_timeout": _number(float, 0, above=True),
    "shutdown_timeout": _number(float, 0),
    "restart_delay": _number(float, 0),
    "restart_delay_max": _number(float, 0),
    "give_up_after": _number(int, 0),
    "schedule_poll_interval": _number(float, 0, above=True),
    "dead_ttl": _number(float, 0, above=True),
    "dead_max_jobs": _number(int, 1),
    "max_payload": _number(int, 0),
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True),
    "log_format": _choice("text", "json"),
    "log_app": _flag,
    "fsync": _choice("always", "everysec", "no"),
    "middleware": _import_paths,
    "web_username": _name,
    "web_password": _optional_string,
    "web_token": _optional_string,
    "web_read_only": _flag,
    "min_replicas_ack": _number(int, 0),
    # a Sentinel group or a Cluster as a table instead of a URL (docs/scaling.md)
    "sentinel": _topology_table("sentinel"),
    "cluster": _topology_table("cluster"),
    # checked by the feature that owns it (register_check)
    "cron": _as_given,
    "mail": _as_given,
    "data": _as_given,
    "parity": _as_given,
    "app": _app_table,
    "database_url": _database_url,
    # the delivery pipeline's table: the CI server's projects and the app's build
    # definition; steep.pipeline checks its contents where it uses them
    "pipeline": _optional_table,
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


def redacted_url(url: str) -> str:
    """`url` with its password (in the user info or a `password=` query) replaced by ***."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match[2].partition(":")
        return f"{match[1]}{user}{colon}***@" if colon else match[0]

    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@", hide, url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)
