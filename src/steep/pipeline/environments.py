"""Environments: where a green build of a branch deploys itself, from the
`[pipeline.environments.NAME]` tables of the app's steep.toml (read, like the steps,
from the commit being built).

    [pipeline.environments.staging]
    branch = "staging"
    url = "http://127.0.0.1:8001"
    strategy = "releases"                   # releases | command
    path = "/srv/shop/staging"              # releases: releases/, shared/, current
    restart = "systemctl --user restart shop-staging"
    health = "/health"
    [[pipeline.environments.staging.checks]]
    http = "/"
    expect_status = 200
    expect_text = "Shop"

Every mistake names the file and line, as for the steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from steep.pipeline.definition import _env, _Reader, _seconds, _unknown

STRATEGIES = ("releases", "command")
ENV_KEYS = (
    "branch",
    "url",
    "strategy",
    "path",
    "host",
    "restart",
    "release",
    "shared",
    "keep",
    "command",
    "health",
    "health_timeout",
    "health_grace",
    "checks",
    "requires",
    "approval",
    "data_from",
    "approval_timeout",
    "env",
)
CHECK_KEYS = ("http", "run", "expect_status", "expect_text", "timeout", "retries")
APPROVAL_TIMEOUT = 7 * 86400.0
ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class Check:
    """A sanity check after a deploy: an HTTP request, or a command."""

    http: str | None = None
    run: str | None = None
    expect_status: int = 200
    expect_text: str | None = None
    timeout: float = 10.0
    retries: int = 3

    @property
    def label(self) -> str:
        return f"GET {self.http}" if self.http is not None else f"run {self.run}"


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    branch: str
    url: str
    strategy: str
    path: str | None = None
    host: str = ""
    restart: str | None = None
    release: str | None = None  # the hook before the switch (migrations)
    shared: tuple[str, ...] = ()
    keep: int = 5
    command: str | None = None
    health: str | None = None
    health_timeout: float = 30.0
    health_grace: float = 0.0
    checks: tuple[Check, ...] = ()
    requires: str | None = None
    approval: bool = False
    approval_timeout: float = APPROVAL_TIMEOUT  # seconds a deploy waits for a person
    data_from: str | None = None  # the environment whose data may be copied over this one's
    env: dict[str, str] = field(default_factory=dict)

    def absolute(self, target: str) -> str:
        """`target` (a path on the environment's URL, or a full URL) as a URL."""
        if target.startswith(("http://", "https://")):
            return target
        return self.url.rstrip("/") + "/" + target.lstrip("/")

    def variables(self) -> dict[str, str]:
        return {**self.env, "STEEP_ENV": self.name, "STEEP_ENV_URL": self.url}


def parse_environments(r: _Reader, raw: Any) -> dict[str, Environment]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise r.fail("'environments' must be tables: [pipeline.environments.NAME]", "pipeline")
    found = {name: _environment(r, name, table) for name, table in raw.items()}
    for env in found.values():
        if env.requires is not None and env.requires not in found:
            where = ("pipeline", "environments", env.name, "requires")
            raise r.fail(
                f"environment {env.name!r} requires {env.requires!r}, which is not an environment"
                f" (environments: {', '.join(found)})",
                *where,
            )
    _no_cycle(r, found)
    for env in found.values():
        if env.data_from is not None:
            _data_flows_down(r, found, env)
    return found


def _data_flows_down(r: _Reader, found: dict[str, Environment], env: Environment) -> None:
    """`data_from` names an environment later in the promotion order (production for
    staging): data is copied down the order, never over the environment it came from."""
    where = ("pipeline", "environments", env.name, "data_from")
    source = found.get(env.data_from or "")
    if source is None:
        raise r.fail(
            f"environment {env.name!r}: data_from {env.data_from!r} is not an environment"
            f" (environments: {', '.join(found)})",
            *where,
        )
    seen, current = set(), source.requires
    while current is not None and current not in seen:
        if current == env.name:
            return
        seen.add(current)
        current = found[current].requires
    raise r.fail(
        f"environment {env.name!r}: data_from must be an environment that comes after it"
        f" (one that requires {env.name!r}, as production requires staging), so data is"
        f" never copied over the environment it came from; {source.name!r} does not",
        *where,
    )


def _no_cycle(r: _Reader, found: dict[str, Environment]) -> None:
    for env in found.values():
        seen, current = {env.name}, env.requires
        while current is not None:
            if current in seen:
                raise r.fail(
                    f"environment {env.name!r}: 'requires' goes round in a circle",
                    "pipeline",
                    "environments",
                    env.name,
                    "requires",
                )
            seen.add(current)
            current = found[current].requires


def _environment(r: _Reader, name: str, t: Any) -> Environment:
    where = ("pipeline", "environments", name)
    label = f"[pipeline.environments.{name}]"
    if not ENV_NAME_RE.match(name):
        raise r.fail(f"{label}: an environment name is lowercase letters, digits, '-', '_'", *where)
    if not isinstance(t, dict):
        raise r.fail(f"{label} must be a table", *where)
    for key in t:
        if key not in ENV_KEYS:
            raise r.fail(f"{label}: {_unknown(key, ENV_KEYS)}", *where, key)

    def text(key: str, required: bool = False) -> str | None:
        value = t.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            need = "needs" if value is None else "must have"
            raise r.fail(f"{label} {need} '{key}' (a non-empty string)", *where, key)
        return value

    branch = text("branch", required=True)
    url = text("url", required=True)
    assert branch is not None and url is not None
    if not url.startswith(("http://", "https://")):
        raise r.fail(f"{label}: 'url' must be an http(s) URL, got {url!r}", *where, "url")
    strategy = t.get("strategy")
    if strategy not in STRATEGIES:
        raise r.fail(
            f"{label}: 'strategy' must be one of {', '.join(STRATEGIES)}, got {strategy!r}",
            *where,
            "strategy",
        )
    path, command = text("path"), text("command")
    if strategy == "releases" and path is None:
        raise r.fail(f"{label}: the releases strategy needs 'path' (where releases live)", *where)
    if strategy == "command" and command is None:
        raise r.fail(f"{label}: the command strategy needs 'command' (the deploy command)", *where)
    host = t.get("host", "")
    if not isinstance(host, str) or (
        host and not re.match(r"^[\w.-]+@[\w.-]+(:\d+)?$|^[\w.-]+$", host)
    ):
        raise r.fail(f"{label}: 'host' must be user@host (or empty: this machine)", *where, "host")
    shared = t.get("shared", [])
    if not isinstance(shared, list) or not all(isinstance(s, str) and s for s in shared):
        raise r.fail(f"{label}: 'shared' must be a list of paths", *where, "shared")
    for item in shared:
        if item.startswith("/") or ".." in item.split("/"):
            raise r.fail(
                f"{label}: shared path {item!r} must be inside the release", *where, "shared"
            )
    keep = t.get("keep", 5)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
        raise r.fail(
            f"{label}: 'keep' must be a whole number >= 2 (the current and one to roll back to)",
            *where,
            "keep",
        )
    approval = t.get("approval", False)
    if not isinstance(approval, bool):
        raise r.fail(f"{label}: 'approval' must be true or false", *where, "approval")
    checks = t.get("checks", [])
    if not isinstance(checks, list):
        raise r.fail(
            f"{label}: 'checks' must be [[pipeline.environments.{name}.checks]] tables", *where
        )
    return Environment(
        name=name,
        branch=branch,
        url=url,
        strategy=strategy,
        path=path,
        host=host,
        restart=text("restart"),
        release=text("release"),
        shared=tuple(shared),
        keep=keep,
        command=command,
        health=text("health"),
        health_timeout=_seconds(
            r, t.get("health_timeout", 30), f"{label}: 'health_timeout'", *where, "health_timeout"
        ),
        health_grace=_at_least_zero(r, t.get("health_grace", 0), f"{label}: 'health_grace'", where),
        checks=tuple(_check(r, name, i, c) for i, c in enumerate(checks)),
        requires=text("requires"),
        approval=approval,
        approval_timeout=_seconds(
            r,
            t.get("approval_timeout", APPROVAL_TIMEOUT),
            f"{label}: 'approval_timeout'",
            *where,
            "approval_timeout",
        ),
        data_from=text("data_from"),
        env=_env(r, t.get("env", {}), *where, "env"),
    )


def _at_least_zero(r: _Reader, value: Any, what: str, where: tuple[str, ...]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise r.fail(f"{what} must be a number of seconds >= 0, got {value!r}", *where)
    return float(value)


def to_json(env: Environment) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(env)


def from_json(data: dict[str, Any]) -> Environment:
    return Environment(
        **{
            **data,
            "shared": tuple(data.get("shared", ())),
            "checks": tuple(Check(**c) for c in data.get("checks", ())),
        }
    )


def _check(r: _Reader, env: str, index: int, raw: Any) -> Check:
    where = ("pipeline", "environments", env, "checks")
    label = f"environment {env!r}, check {index + 1}"
    if not isinstance(raw, dict):
        raise r.fail(f"{label}: must be a table with 'http' or 'run'", *where)
    for key in raw:
        if key not in CHECK_KEYS:
            raise r.fail(f"{label}: {_unknown(key, CHECK_KEYS)}", *where)
    http, run = raw.get("http"), raw.get("run")
    if (http is None) == (run is None):
        raise r.fail(
            f"{label}: give 'http' (a path or URL) or 'run' (a command), one of them", *where
        )
    for key, value in (("http", http), ("run", run)):
        if value is not None and (not isinstance(value, str) or not value):
            raise r.fail(f"{label}: '{key}' must be a non-empty string", *where)
    status = raw.get("expect_status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status < 600:
        raise r.fail(f"{label}: 'expect_status' must be an HTTP status, got {status!r}", *where)
    text = raw.get("expect_text")
    if text is not None and not isinstance(text, str):
        raise r.fail(f"{label}: 'expect_text' must be a string", *where)
    retries = raw.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise r.fail(f"{label}: 'retries' must be a whole number >= 0", *where)
    timeout = _seconds(r, raw.get("timeout", 10 if http else 300), f"{label}: 'timeout'", *where)
    return Check(
        http=http, run=run, expect_status=status, expect_text=text, timeout=timeout, retries=retries
    )
