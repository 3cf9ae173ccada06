"""`steep env diff staging production`: how two environments differ, and whether each
difference was meant.

Compared: the effective steep settings of each environment (steep.toml's top level with the
environment's table over it, as a process with that `STEEP_ENV` would read them), the
application's own settings declared in `[app]` / `[<env>.app]`, and the *names* of the
variables in each environment's env file (`[parity] env_files`; values are never read
beyond the name). Secrets are compared but never shown. A difference whose name matches a
pattern of `[parity] allow` is intended; any other is unexpected, and the command exits 1,
so it can gate a deploy.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steep.settings import ConfigError, Settings, load_settings, redacted_url
from steep.settings_checks import SECRETS

# settings that are per environment by nature: never reported
_SKIPPED = ("env", "data_dir", "parity", "cron")
_URLS = ("redis_url", "database_url")
_NAME = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str  # "setting", "app" or "variable"
    name: str
    left: str
    right: str
    intended: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "left": self.left,
            "right": self.right,
            "intended": self.intended,
        }


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    leaf = name.rpartition(".")[2]
    if name in SECRETS or re.search(r"(password|secret|token|key)$", leaf, re.IGNORECASE):
        return "***"
    if name in _URLS and isinstance(value, str):
        return redacted_url(value)
    return repr(value) if not isinstance(value, str) else value


def _settings_of(settings: Settings) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in Settings.__dataclass_fields__:
        if name in _SKIPPED or name == "app":
            continue
        value = getattr(settings, name)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def variable_names(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"[parity] env_files: cannot read {path}: {exc.strerror}") from None
    return {m[1] for line in text.splitlines() if (m := _NAME.match(line))}


def _intended(name: str, patterns: list[str]) -> bool:
    forms = {name, name.replace(".", "_")}
    return any(
        fnmatch.fnmatchcase(form.lower(), pattern.lower()) for form in forms for pattern in patterns
    )


def diff(left_env: str, right_env: str, cwd: Path | None = None) -> list[Difference]:
    base = Path(os.path.abspath(cwd or os.getcwd()))
    environ = {k: v for k, v in os.environ.items() if k != "STEEP_ENV"}
    left = load_settings(base, {**environ, "STEEP_ENV": left_env})
    right = load_settings(base, {**environ, "STEEP_ENV": right_env})
    parity = left.parity or right.parity or {}
    patterns = list(parity.get("allow", []))
    found: list[Difference] = []

    def compare(kind: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) != b.get(name):
                shown = (_shown(name, a.get(name)), _shown(name, b.get(name)))
                if shown[0] == shown[1]:  # secrets that differ
                    shown = ("*** (differs)", "*** (differs)")
                found.append(Difference(kind, name, *shown, _intended(name, patterns)))

    compare("setting", _settings_of(left), _settings_of(right))
    compare("app", _flatten(left.app or {}, "app"), _flatten(right.app or {}, "app"))
    files = parity.get("env_files", {})
    if left_env in files or right_env in files:
        names = {
            env: variable_names(base / files[env]) if env in files else set()
            for env in (left_env, right_env)
        }
        for name in sorted(names[left_env] ^ names[right_env]):
            has = ("set", "(missing)") if name in names[left_env] else ("(missing)", "set")
            found.append(Difference("variable", name, *has, _intended(name, patterns)))
    return found
