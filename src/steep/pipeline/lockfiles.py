"""The Python packages a commit pins, read from its lock files when it is deployed, so
`steep env diff staging production` can say which versions differ between what runs
in each environment.

Read, in this order (the first that pins anything wins): `uv.lock`, `pylock.toml`,
`poetry.lock`, `Pipfile.lock`, `requirements.lock`, `requirements.txt` (lines
`name==version`). Names are normalised as PyPI does (`Django_Foo` → `django-foo`).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from typing import Any

FILES = (
    "uv.lock",
    "pylock.toml",
    "poetry.lock",
    "Pipfile.lock",
    "requirements.lock",
    "requirements.txt",
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#\\]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _toml_packages(text: str, table: str) -> dict[str, str]:
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    found = {}
    for package in doc.get(table, []):
        if isinstance(package, dict) and isinstance(package.get("version"), str):
            found[normalise(str(package.get("name", "")))] = package["version"]
    return {k: v for k, v in found.items() if k}


def _pipfile(text: str) -> dict[str, str]:
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    found = {}
    for name, spec in (doc.get("default") or {}).items():
        version = spec.get("version", "") if isinstance(spec, dict) else ""
        if isinstance(version, str) and version.startswith("=="):
            found[normalise(name)] = version[2:]
    return found


def _requirements(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if match := _PIN.match(line.strip()):
            found[normalise(match[1])] = match[2]
    return found


def parse(name: str, text: str) -> dict[str, str]:
    """The pins of one lock file's text."""
    if name in ("uv.lock", "poetry.lock"):
        return _toml_packages(text, "package")
    if name == "pylock.toml":
        return _toml_packages(text, "packages")
    if name == "Pipfile.lock":
        return _pipfile(text)
    return _requirements(text)


def pinned(read: Callable[[str], str | None]) -> tuple[str | None, dict[str, str]]:
    """(the lock file read, its pins) of a tree, `read(path)` giving a file's text."""
    for name in FILES:
        text = read(name)
        if text is not None and (found := parse(name, text)):
            return name, dict(sorted(found.items()))
    return None, {}
