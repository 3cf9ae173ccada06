"""Steep's settings: defaults, then `steep.toml`, then `STEEP_*` environment variables.

Precedence, lowest first: defaults, top-level keys of steep.toml, the file's table for
the current environment (`[development]`, `[staging]`, `[production]`), environment
variables, `configure()` overrides. Every error names where the bad value came from
(file and line, or the variable): a worker that refuses to start should point at the
typo, not leave the reader guessing. See docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steep.settings_checks import (
    _CHECKS,
    _ENV_VARS,
    CONFIG_FILE,
    ENVIRONMENTS,
    FIELDS,
    SECRETS,
    ConfigError,
    Invalid,
    _heartbeat_problem,
    _must,
    redacted_url,
    register_check,
    topology_url,
)
from steep.settings_file import _did_you_mean, _FileReader

__all__ = [
    "ENVIRONMENTS",
    "FIELDS",
    "ConfigError",
    "Invalid",
    "Settings",
    "configure",
    "get_settings",
    "load_settings",
    "redacted_url",
    "register_check",
    "reset_settings",
]


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
    # how a worker process runs plain-function jobs: "auto" (a thread per slot that claims,
    # runs and acknowledges on its own connection, when every registered job is a plain
    # function), "threads" (always so; async jobs then hold a slot's thread) or "loop"
    # (every job is started by the event loop; plain functions in a thread pool)
    worker_mode: str = "auto"
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 10.0
    shutdown_timeout: float = 25.0
    # the supervisor's restarts (worker/restarts.py): the first delay, doubling while
    # processes keep dying soon after they start, up to the cap; and how many processes
    # of a slot in a row may die before they become ready before it gives up (0: never)
    restart_delay: float = 0.5
    restart_delay_max: float = 30.0
    give_up_after: int = 5
    schedule_poll_interval: float = 0.5
    dead_ttl: float = 15552000.0
    dead_max_jobs: int = 10000
    # the largest encoded job (envelope and arguments) enqueue accepts, in bytes; 0: no limit
    max_payload: int = 1048576
    log_level: str = "INFO"
    log_format: str = "text"
    # `steep worker`: the application's loggers (the root logger) get steep's format and
    # the running job's context (job_id, job_name, job_queue, job_attempt)
    log_app: bool = True
    fsync: str = "everysec"
    middleware: tuple[str, ...] = ()
    # the dashboard (steep web, steep.web.create_app): HTTP basic user and password,
    # and/or a bearer token; read-only hides every action
    web_username: str = "steep"
    web_password: str | None = None
    web_token: str | None = None
    web_read_only: bool = False
    # enqueues and acknowledgements wait (WAIT) until this many replicas have them, so
    # that a failover loses none of them (docs/scaling.md); 0: do not wait
    min_replicas_ack: int = 0
    # [sentinel] / [cluster]: where Redis is, as a table (redis_url, when set, wins)
    sentinel: Any = None
    cluster: Any = None
    cron: Any = ()  # the [cron] table: a tuple of steep.features.cron.CronEntry once checked
    # the staging toolkit's tables (checked by steep.mail and steep.data when imported):
    # [mail] with [<env>.mail] over it, [data] (scrub rules), [parity] (steep env diff)
    mail: Any = None
    data: Any = None
    parity: Any = None
    app: Any = None  # [app] and [<env>.app]: the application's own settings, for parity
    # the application's database in this environment (steep data copy): postgresql://...
    # or sqlite:///path; its password is never shown
    database_url: str | None = None
    pipeline: dict[str, Any] | None = None  # the [pipeline] table, read by steep.pipeline

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
        if self.sentinel and self.cluster:
            raise ConfigError("Settings: give a [sentinel] table or a [cluster] table, not both")
        for kind in ("sentinel", "cluster"):
            table = getattr(self, kind)
            if table and self.redis_url is None:
                object.__setattr__(self, "redis_url", topology_url(kind, table))

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks; the password in redis_url must not.
        shown = {key: getattr(self, key) for key in _CHECKS}
        shown["redis_url"] = self.redis_url and redacted_url(self.redis_url)
        shown["database_url"] = self.database_url and redacted_url(self.database_url)
        for key in SECRETS:
            if shown[key] is not None:
                shown[key] = "***"
        return f"Settings({', '.join(f'{key}={value!r}' for key, value in shown.items())})"


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Settings)}

# What marks a project's top directory: steep.toml first, then pyproject.toml.
PROJECT_MARKERS = (CONFIG_FILE, "pyproject.toml")


def project_root(start: Path | None = None) -> Path | None:
    """The nearest directory, from `start` (the current one) up, holding steep.toml or
    pyproject.toml; None when no parent does.

    Every process of a project, wherever in it it starts, reads the same steep.toml and
    finds the same embedded server beside it; two projects never share one by accident.
    """
    here = Path(os.path.abspath(start if start is not None else os.getcwd()))
    for directory in (here, *here.parents):
        if any((directory / marker).is_file() for marker in PROJECT_MARKERS):
            return directory
    return None


def load_settings(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read steep.toml (the project's, see `project_root`, or the file `STEEP_CONFIG` names)
    and `STEEP_*` variables."""
    base = Path(os.path.abspath(cwd if cwd is not None else os.getcwd()))
    root = project_root(base) or base
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
        env, values = _FileReader(path, config, _DEFAULTS).read(env)
    elif (root / CONFIG_FILE).is_file():
        shown = str(root / CONFIG_FILE) if root != base else CONFIG_FILE
        env, values = _FileReader(root / CONFIG_FILE, shown, _DEFAULTS).read(env)
    for name, key in _ENV_VARS.items():
        if (raw := var(name)) is not None:
            values[key] = from_var(name, key, raw)
    # A data dir from the environment is relative to cwd; the default sits in the
    # project's top directory (beside steep.toml or pyproject.toml), else in cwd.
    for kind in ("sentinel", "cluster"):  # the tables' password variables from `environ`
        if (
            values.get(kind)
            and not values.get("redis_url")
            and not values.get("sentinel" if kind == "cluster" else "cluster")
        ):
            values["redis_url"] = topology_url(kind, values[kind], env_vars)
    if "data_dir" in values:
        values["data_dir"] = base / values["data_dir"]
    else:
        values["data_dir"] = root / Path(str(_DEFAULTS["data_dir"]))
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
