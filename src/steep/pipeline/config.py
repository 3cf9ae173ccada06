"""The CI server's side of the pipeline: its projects and their secrets.

Read from the `[pipeline]` table of the server's steep.toml (see docs/pipeline.md):

    [pipeline]
    url = "https://ci.example.com"          # where the dashboard is seen (commit status links)
    [pipeline.projects.shop]
    repo = "/srv/git/shop.git"              # any URL git accepts
    forge = "github"                        # github | gitea | none
    webhook_secret_env = "SHOP_WEBHOOK_SECRET"
    token_env = "SHOP_FORGE_TOKEN"
    poll = 30

Deploys to hosts over SSH (an environment's `host = "user@host"`) use the system's
OpenSSH client with the server's own key and known hosts:

    [pipeline]
    ssh_key = "/etc/steep/deploy_ed25519"   # the private key (else ssh's default ones)
    ssh_known_hosts = "/etc/steep/known_hosts"
    ssh_accept_new_host_keys = false        # true: a host's first key is learned
    ssh_connect_timeout = 10
    ssh_options = ["ServerAliveInterval=15"]

A project names the environment variables that hold its secrets, never the secrets:
they are read when used, so no record, log line or `repr` can carry one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steep.settings import ConfigError, Settings, get_settings

FORGES = ("github", "gitea", "none")
DEFAULT_URL = "http://127.0.0.1:8500"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_PROJECT_KEYS = {
    "repo": "the git remote",
    "forge": "github, gitea or none",
    "webhook_secret_env": "the variable holding the webhook secret",
    "token_env": "the variable holding the forge's API token",
    "poll": "seconds between polls",
    "forge_repo": "owner/name on the forge",
    "forge_api": "the forge's API base URL",
    "cancel_superseded": "cancel older unfinished runs of a branch",
    "secrets": "variables given to branch builds, masked in logs",
    "deploy_secrets": "variables given to deploys only (a list, or a table by environment)",
    "notify_webhook": "a URL that gets a POST on a failed or fixed build",
    "notify_mail": "addresses mailed on a failed or fixed build",
}
_SSH_KEYS = (
    "ssh_key",
    "ssh_known_hosts",
    "ssh_accept_new_host_keys",
    "ssh_connect_timeout",
    "ssh_options",
)
_SERVER_KEYS = ("projects", "url", "keep_runs", "log_lines", "notify", *_SSH_KEYS)
# set by steep itself for every connection (hosts.py): not to be loosened by ssh_options
_SSH_OWN_OPTIONS = (
    "batchmode",
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "identityfile",
    "identitiesonly",
    "connecttimeout",
    "port",
    "user",
)
# the build definition's keys (steep.pipeline.definition) may sit in the same table when
# the CI server's steep.toml is also an app's
_DEFINITION_KEYS = ("timeout", "setup", "env", "cache", "steps")
_NOTIFY_KEYS = ("webhook", "mail_to", "smtp_host", "smtp_port", "mail_from")


@dataclass(frozen=True, slots=True)
class Project:
    name: str
    repo: str
    forge: str = "none"
    webhook_secret_env: str | None = None
    token_env: str | None = None
    poll: float = 0.0
    forge_repo: str | None = None
    forge_api: str | None = None
    cancel_superseded: bool = True
    secrets: tuple[str, ...] = ()
    # environment name (or "*": every one) -> the variables its deploys get, and no build
    deploy_secrets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    notify_webhook: str | None = None
    notify_mail: tuple[str, ...] = ()

    def webhook_secret(self) -> bytes | None:
        value = os.environ.get(self.webhook_secret_env) if self.webhook_secret_env else None
        return value.encode() if value else None

    def token(self) -> str | None:
        return (os.environ.get(self.token_env) or None) if self.token_env else None

    def secret_values(self) -> dict[str, str]:
        """The build secrets (`secrets = [...]`) that are set on this machine."""
        return {name: os.environ[name] for name in self.secrets if os.environ.get(name)}

    def deploy_secret_values(self, env: str) -> dict[str, str]:
        """The variables a deploy to `env` gets (never a build step, never a pull request)."""
        names = (*self.deploy_secrets.get("*", ()), *self.deploy_secrets.get(env, ()))
        return {name: os.environ[name] for name in names if os.environ.get(name)}

    def masked(self) -> list[str]:
        """Every secret value of this project that output must never show."""
        values = [*self.secret_values().values()]
        for names in self.deploy_secrets.values():
            values += [os.environ[name] for name in names if os.environ.get(name)]
        if secret := self.webhook_secret():
            values.append(secret.decode())
        if token := self.token():
            values.append(token)
        return values

    @property
    def shown_repo(self) -> str:
        """The remote with any password in it hidden, for pages and logs."""
        from steep.settings import redacted_url

        return redacted_url(self.repo)


@dataclass(frozen=True, slots=True)
class Notify:
    webhook: str | None = None
    mail_to: tuple[str, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 25
    mail_from: str = "steep@localhost"


@dataclass(frozen=True, slots=True)
class SshSettings:
    """How the CI server connects to deploy hosts: its key, the hosts it trusts."""

    key: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    projects: Mapping[str, Project] = field(default_factory=dict)
    url: str = DEFAULT_URL
    keep_runs: int = 200
    log_lines: int = 20000
    notify: Notify = Notify()
    data_dir: Path = Path(".steep") / "pipeline"
    ssh: SshSettings = SshSettings()

    def project(self, name: str) -> Project:
        try:
            return self.projects[name]
        except KeyError:
            known = ", ".join(sorted(self.projects)) or "none is configured"
            raise ConfigError(
                f"unknown project {name!r} (projects: {known}; see [pipeline.projects] "
                "in the CI server's steep.toml)"
            ) from None

    def mirror(self, project: str) -> Path:
        return self.data_dir / "mirrors" / f"{project}.git"

    def workspace(self, run_id: str, step: str, attempt: int) -> Path:
        return self.data_dir / "workspaces" / run_id / f"{step}-{attempt}"

    def log_file(self, run_id: str, step: str) -> Path:
        return self.data_dir / "runs" / run_id / f"{step}.log"

    def cache_root(self, project: str) -> Path:
        return self.data_dir / "cache" / project

    def run_url(self, run_id: str) -> str:
        return f"{self.url.rstrip('/')}/pipeline/runs/{run_id}"


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"steep.toml: [{where}] {message}")


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, f"'{key}' must be a non-empty string, got {value!r}")
    return value


def _env_name(where: str, key: str, value: Any) -> str:
    name = _string(where, key, value)
    if not ENV_NAME_RE.match(name):
        raise _fail(where, f"'{key}' must name an environment variable, got {name!r}")
    return name


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"'{key}' must be a list of strings")
    return tuple(value)


def _project(name: str, table: Any) -> Project:
    where = f"pipeline.projects.{name}"
    if not NAME_RE.match(name):
        raise _fail(where, "a project name is letters, digits, '.', '_' or '-' (at most 64)")
    if not isinstance(table, dict):
        raise _fail(where, "must be a table")
    for key in table:
        if key not in _PROJECT_KEYS:
            import difflib

            close = difflib.get_close_matches(key, list(_PROJECT_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _fail(where, f"unknown key '{key}'{hint}")
    if "repo" not in table:
        raise _fail(where, "needs 'repo', the git remote (a path or any URL git accepts)")
    forge = table.get("forge", "none")
    if forge not in FORGES:
        raise _fail(where, f"'forge' must be one of {', '.join(FORGES)}, got {forge!r}")
    poll = table.get("poll", 0)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or poll < 0:
        raise _fail(where, f"'poll' must be a number of seconds >= 0, got {poll!r}")
    cancel = table.get("cancel_superseded", True)
    if not isinstance(cancel, bool):
        raise _fail(where, f"'cancel_superseded' must be true or false, got {cancel!r}")
    optional = {
        key: _env_name(where, key, table[key])
        for key in ("webhook_secret_env", "token_env")
        if key in table
    }
    texts = {
        key: _string(where, key, table[key])
        for key in ("forge_repo", "forge_api", "notify_webhook")
        if key in table
    }
    if "secrets" in table:
        for secret in _strings(where, "secrets", table["secrets"]):
            _env_name(where, "secrets", secret)
    deploy_secrets = _deploy_secrets(where, table.get("deploy_secrets", []))
    return Project(
        name=name,
        repo=_string(where, "repo", table["repo"]),
        forge=forge,
        poll=float(poll),
        cancel_superseded=cancel,
        secrets=_strings(where, "secrets", table.get("secrets", [])),
        deploy_secrets=deploy_secrets,
        notify_mail=_strings(where, "notify_mail", table.get("notify_mail", [])),
        **optional,
        **texts,
    )


def _deploy_secrets(where: str, value: Any) -> dict[str, tuple[str, ...]]:
    """`deploy_secrets = ["A"]` (every environment) or `{ production = ["A"] }`."""
    if isinstance(value, dict):
        found = {}
        for env, names in value.items():
            found[env] = _strings(where, f"deploy_secrets.{env}", names)
    else:
        found = {"*": _strings(where, "deploy_secrets", value)}
    for names in found.values():
        for name in names:
            _env_name(where, "deploy_secrets", name)
    return {env: names for env, names in found.items() if names}


def _notify(table: Any) -> Notify:
    if not isinstance(table, dict):
        raise _fail("pipeline.notify", "must be a table")
    for key in table:
        if key not in _NOTIFY_KEYS:
            raise _fail(
                "pipeline.notify", f"unknown key '{key}' (known: {', '.join(_NOTIFY_KEYS)})"
            )
    port = table.get("smtp_port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise _fail("pipeline.notify", f"'smtp_port' must be a port number, got {port!r}")
    return Notify(
        webhook=_string("pipeline.notify", "webhook", table["webhook"])
        if "webhook" in table
        else None,
        mail_to=_strings("pipeline.notify", "mail_to", table.get("mail_to", [])),
        smtp_host=table.get("smtp_host") or None,
        smtp_port=port,
        mail_from=table.get("mail_from", "steep@localhost"),
    )


def _ssh(table: dict[str, Any]) -> SshSettings:
    paths = {
        key: Path(_string("pipeline", key, table[key])).expanduser()
        for key in ("ssh_key", "ssh_known_hosts")
        if key in table
    }
    accept = table.get("ssh_accept_new_host_keys", False)
    if not isinstance(accept, bool):
        raise _fail("pipeline", f"'ssh_accept_new_host_keys' must be true or false, got {accept!r}")
    timeout = table.get("ssh_connect_timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 1:
        raise _fail("pipeline", f"'ssh_connect_timeout' must be seconds >= 1, got {timeout!r}")
    options = _strings("pipeline", "ssh_options", table.get("ssh_options", []))
    for option in options:
        name, equals, value = option.partition("=")
        if not equals or not re.match(r"^[A-Za-z]+$", name) or not value.strip():
            raise _fail("pipeline", f"'ssh_options': {option!r} is not Name=value")
        if name.lower() in _SSH_OWN_OPTIONS:
            raise _fail(
                "pipeline",
                f"'ssh_options': {name} is set by steep (use ssh_key, ssh_known_hosts, "
                "ssh_accept_new_host_keys, ssh_connect_timeout or the environment's host)",
            )
    return SshSettings(
        key=paths.get("ssh_key"),
        known_hosts=paths.get("ssh_known_hosts"),
        accept_new_host_keys=accept,
        connect_timeout=float(timeout),
        options=options,
    )


def load(settings: Settings | None = None) -> PipelineConfig:
    """The pipeline's configuration from the settings' `[pipeline]` table."""
    settings = settings or get_settings()
    table = settings.pipeline or {}
    for key in table:
        if key not in (*_SERVER_KEYS, *_DEFINITION_KEYS):
            raise _fail("pipeline", f"unknown key '{key}' (known: {', '.join(_SERVER_KEYS)})")
    projects = table.get("projects", {})
    if not isinstance(projects, dict):
        raise _fail("pipeline.projects", "must be a table of projects")
    url = table.get("url", DEFAULT_URL)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _fail("pipeline", f"'url' must be an http(s) URL, got {url!r}")
    numbers = {}
    for key in ("keep_runs", "log_lines"):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _fail("pipeline", f"'{key}' must be a whole number >= 1, got {value!r}")
            numbers[key] = value
    return PipelineConfig(
        projects={name: _project(name, t) for name, t in projects.items()},
        url=url,
        notify=_notify(table.get("notify", {})),
        data_dir=Path(settings.data_dir) / "pipeline",
        ssh=_ssh(table),
        **numbers,
    )
