"""The build definition: the `[pipeline]` table of the app's steep.toml, read from the
commit being built, parsed and checked before anything runs.

    [pipeline]
    timeout = 900                   # the whole run, seconds
    setup = "pip install -e ."      # runs before every step's command (optional)
    env = { DJANGO_SETTINGS_MODULE = "shop.settings.ci" }
    [pipeline.cache]
    paths = [".venv"]               # kept between builds of the project...
    key = ["requirements.txt"]      # ...as long as these files are the same
    [[pipeline.steps]]
    name = "lint"
    run = "ruff check ."
    [[pipeline.steps]]
    name = "tests"
    run = "pytest -q"
    stage = "test"                  # steps of one stage run in parallel
    timeout = 600

Stages run in the order of their first mention; a step without `stage` is a stage of
its own, so steps run one after the other unless grouped. Every error names the file,
the line and what is wrong (`steep.toml:12: step 'tests': 'timeout' must be ...`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from steep.settings_file import key_lines, toml_error

DEFAULT_TIMEOUT = 3600.0
MAX_STEPS = 64
STEP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOP_KEYS = ("timeout", "setup", "env", "cache", "steps", "environments")
STEP_KEYS = ("name", "run", "stage", "timeout", "setup", "env")
CACHE_KEYS = ("paths", "key")
# the CI server's own keys, when its steep.toml is also the app's (steep.pipeline.config)
SERVER_KEYS = ("projects", "url", "keep_runs", "log_lines", "notify")


class DefinitionError(Exception):
    """The build definition is wrong; the message says where (file:line) and why."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    run: str
    stage: str
    timeout: float
    setup: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    deploy: str | None = None  # a deploy step: the environment it deploys to


@dataclass(frozen=True, slots=True)
class Cache:
    paths: tuple[str, ...]
    key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked build definition: what the runner executes."""

    timeout: float
    stages: tuple[tuple[Step, ...], ...]
    env: dict[str, str] = field(default_factory=dict)
    cache: Cache | None = None
    environments: dict[str, Any] = field(default_factory=dict)  # name -> Environment

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for stage in self.stages for step in stage)

    def with_deploys(self, branch: str | None, to: str | None = None, only: bool = False) -> Plan:
        """This plan with a last stage deploying to each environment fed by `branch` (or to
        the environment `to`); with `only`, that stage alone (a promotion: the artifact
        passed its steps already)."""
        if to is not None:
            if to not in self.environments:
                known = ", ".join(self.environments) or "none"
                raise DefinitionError(
                    f"no environment {to!r} in steep.toml (environments: {known})"
                )
            targets = [self.environments[to]]
        else:
            targets = [e for e in self.environments.values() if e.branch == branch]
        if not targets:
            return self
        stage = tuple(
            Step(
                name=f"deploy-{e.name}", run="", stage="deploy", timeout=self.timeout, deploy=e.name
            )
            for e in targets
        )
        return dataclasses.replace(self, stages=(*(() if only else self.stages), stage))

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "env": self.env,
            "cache": None
            if self.cache is None
            else {"paths": self.cache.paths, "key": self.cache.key},
            "stages": [
                [
                    {
                        "name": s.name,
                        "run": s.run,
                        "stage": s.stage,
                        "timeout": s.timeout,
                        "setup": s.setup,
                        "env": s.env,
                        "deploy": s.deploy,
                    }
                    for s in stage
                ]
                for stage in self.stages
            ],
            "environments": {n: environments.to_json(e) for n, e in self.environments.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        cache = data.get("cache")
        return cls(
            timeout=data["timeout"],
            env=data.get("env") or {},
            cache=None if not cache else Cache(tuple(cache["paths"]), tuple(cache["key"])),
            stages=tuple(tuple(Step(**s) for s in stage) for stage in data["stages"]),
            environments={
                n: environments.from_json(e) for n, e in (data.get("environments") or {}).items()
            },
        )


class _Reader:
    def __init__(self, text: str, shown: str) -> None:
        self.shown = shown
        self.text_lines = text.splitlines()
        self.lines = key_lines(text)
        self.step_lines = self._array_lines(text)

    @staticmethod
    def _array_lines(text: str) -> list[int]:
        pattern = re.compile(r"\s*\[\[\s*pipeline\s*\.\s*steps\s*\]\]")
        return [n for n, line in enumerate(text.splitlines(), 1) if pattern.match(line)]

    def where(self, *path: str, step: int | None = None, key: str | None = None) -> str:
        if step is not None and step < len(self.step_lines):
            # keys of the n-th [[pipeline.steps]] lie between its header and the next one
            start = self.step_lines[step]
            end = self.step_lines[step + 1] if step + 1 < len(self.step_lines) else None
            if key is not None:
                pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
                for number in range(start, end or len(self.text_lines) + 1):
                    if pattern.match(self.text_lines[number - 1]):
                        return f"{self.shown}:{number}"
            return f"{self.shown}:{start}"
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return f"{self.shown}:{self.lines[path[:end]]}"
        return self.shown

    def fail(
        self, message: str, *path: str, step: int | None = None, key: str | None = None
    ) -> DefinitionError:
        return DefinitionError(f"{self.where(*path, step=step, key=key)}: {message}")


def _unknown(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return (
        f"unknown key '{key}'"
        + (f" (did you mean '{close[0]}'?)" if close else "")
        + (f"; known: {', '.join(known)}")
    )


def _seconds(
    r: _Reader, value: Any, what: str, *path: str, step: int | None = None, key: str | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise r.fail(
            f"{what} must be a number of seconds above 0, got {value!r}", *path, step=step, key=key
        )
    return float(value)


def _env(
    r: _Reader, value: Any, *path: str, step: int | None = None, key: str | None = None
) -> dict[str, str]:
    at: dict[str, Any] = {"step": step, "key": key}
    if not isinstance(value, dict):
        raise r.fail("'env' must be a table of NAME = \"value\"", *path, **at)
    out: dict[str, str] = {}
    for name, item in value.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise r.fail(f"'env': {name!r} is not a variable name", *path, **at)
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise r.fail(f"'env.{name}' must be a string or a number", *path, **at)
        out[name] = str(item)
    return out


def parse(text: str, shown: str = "steep.toml") -> Plan:
    """The plan of the build definition in `text` (a steep.toml), or DefinitionError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(str(toml_error(shown, text, exc))) from None
    r = _Reader(text, shown)
    table = doc.get("pipeline")
    if not isinstance(table, dict) or "steps" not in table:
        raise DefinitionError(
            f"{shown}: no build definition: add a [pipeline] table with [[pipeline.steps]] "
            "(name and run), see docs/pipeline.md"
        )
    for key in table:
        if key not in TOP_KEYS and key not in SERVER_KEYS:
            raise r.fail(_unknown(key, TOP_KEYS), "pipeline", key)
    timeout = _seconds(r, table.get("timeout", DEFAULT_TIMEOUT), "'timeout'", "pipeline", "timeout")
    setup = table.get("setup")
    if setup is not None and not isinstance(setup, str):
        raise r.fail("'setup' must be a command (a string)", "pipeline", "setup")
    env = _env(r, table.get("env", {}), "pipeline", "env")
    cache = _cache(r, table.get("cache"))
    steps = table["steps"]
    if not isinstance(steps, list) or not steps:
        raise r.fail("'steps' must be a list of [[pipeline.steps]] tables", "pipeline", "steps")
    if len(steps) > MAX_STEPS:
        raise r.fail(f"at most {MAX_STEPS} steps, got {len(steps)}", "pipeline", "steps")
    order: dict[str, list[Step]] = {}
    seen: set[str] = set()
    for index, raw in enumerate(steps):
        step = _step(r, index, raw, timeout, setup)
        if step.name in seen:
            raise r.fail(f"two steps are named {step.name!r}", step=index)
        seen.add(step.name)
        order.setdefault(step.stage, []).append(step)
    return Plan(
        timeout=timeout,
        stages=tuple(tuple(s) for s in order.values()),
        env=env,
        cache=cache,
        environments=environments.parse_environments(r, table.get("environments")),
    )


def _step(r: _Reader, index: int, raw: Any, timeout: float, setup: str | None) -> Step:
    if not isinstance(raw, dict):
        raise r.fail("each step must be a table with 'name' and 'run'", "pipeline", "steps")
    label = f"step {raw.get('name', index + 1)!r}"
    for key in raw:
        if key not in STEP_KEYS:
            raise r.fail(f"{label}: {_unknown(key, STEP_KEYS)}", step=index, key=key)
    name = raw.get("name")
    if not isinstance(name, str) or not STEP_NAME_RE.match(name):
        raise r.fail(
            f"{label}: 'name' must be letters, digits, '.', '_' or '-' (at most 64), got {name!r}",
            step=index,
            key="name",
        )
    run = raw.get("run")
    if not isinstance(run, str) or not run.strip():
        raise r.fail(
            f"{label}: 'run' must be the command to run (a non-empty string)", step=index, key="run"
        )
    stage = raw.get("stage", name)
    if not isinstance(stage, str) or not STEP_NAME_RE.match(stage):
        raise r.fail(
            f"{label}: 'stage' must be a name like 'test', got {stage!r}", step=index, key="stage"
        )
    step_setup = raw.get("setup", setup)
    if step_setup is not None and not isinstance(step_setup, str):
        raise r.fail(f"{label}: 'setup' must be a command (a string)", step=index, key="setup")
    step_timeout = _seconds(
        r, raw.get("timeout", timeout), f"{label}: 'timeout'", step=index, key="timeout"
    )
    return Step(
        name=name,
        run=run,
        stage=stage,
        timeout=min(step_timeout, timeout),
        setup=step_setup,
        env=_env(r, raw.get("env", {}), step=index, key="env"),
    )


def _cache(r: _Reader, raw: Any) -> Cache | None:
    if raw is None:
        return None
    where = ("pipeline", "cache")
    if not isinstance(raw, dict):
        raise r.fail("'cache' must be a table with 'paths' and 'key'", *where)
    for key in raw:
        if key not in CACHE_KEYS:
            raise r.fail(f"[pipeline.cache]: {_unknown(key, CACHE_KEYS)}", *where, key)
    lists = {}
    for key in CACHE_KEYS:
        value = raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise r.fail(f"[pipeline.cache]: '{key}' must be a list of paths", *where, key)
        for path in value:
            if path.startswith("/") or ".." in path.split("/"):
                raise r.fail(
                    f"[pipeline.cache]: {path!r} must be a path inside the workspace", *where, key
                )
        lists[key] = tuple(value)
    if not lists["paths"]:
        raise r.fail("[pipeline.cache]: 'paths' names no directory to keep", *where)
    return Cache(paths=lists["paths"], key=lists["key"])


# last: environments reads definitions with the reader above
from steep.pipeline import environments  # noqa: E402
