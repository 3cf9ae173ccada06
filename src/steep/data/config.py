"""The `[data]` table of steep.toml: scrub rules per table and column, tables to truncate,
rows to keep, and how the copy runs.

    [data]
    truncate = ["sessions"]                # copied empty (their rows are never dumped)
    personal_ok = ["products.name"]        # looks personal, is not: no rule needed
    salt_env = "SCRUB_SALT"                # fakes stay the same from one copy to the next
    after = ["python", "manage.py", "migrate"]   # run after the swap (an argv list)
    jobs = 2                               # pg_dump / pg_restore in parallel
    [data.keep]
    orders = "created_at > now() - interval '90 days'"
    [data.scrub.users]                     # table -> column -> rule
    email = "fake_email"
    name = "fake_name"
    password_hash = "null"
    note = { set = "redacted" }
    city = { sql = "upper(city)" }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steep.settings import Invalid, register_check
from steep.settings_file import _did_you_mean

# the rules a column can be given by name; `{ set = value }` and `{ sql = "..." }` besides
NAMED_RULES = ("fake_email", "fake_name", "fake_phone", "hash", "mask", "null")
_KEYS = ("scrub", "truncate", "keep", "personal_ok", "salt_env", "after", "jobs", "pg_bin")


@dataclass(frozen=True, slots=True)
class Rule:
    """One column's rule: a named one, `set` (a constant) or `sql` (an expression)."""

    kind: str
    value: Any = None

    def describe(self) -> str:
        if self.kind == "set":
            return f"set = {self.value!r}"
        if self.kind == "sql":
            return f"sql = {self.value}"
        return self.kind


@dataclass(frozen=True, slots=True)
class DataConfig:
    """The checked `[data]` table."""

    scrub: dict[str, dict[str, Rule]] = field(default_factory=dict)
    truncate: tuple[str, ...] = ()
    keep: dict[str, str] = field(default_factory=dict)
    personal_ok: tuple[str, ...] = ()
    salt_env: str = ""
    after: tuple[str, ...] = ()
    jobs: int = 1
    pg_bin: str = ""


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(what, repr(value))
    return tuple(value)


def _rule(value: Any) -> Rule:
    if isinstance(value, str):
        if value not in NAMED_RULES:
            hint = _did_you_mean(value, NAMED_RULES)
            raise Invalid(f"one of {', '.join(NAMED_RULES)}{hint}", repr(value))
        return Rule(value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, item),) = value.items()
        if kind == "set":
            return Rule("set", item)
        if kind == "sql" and isinstance(item, str) and item.strip():
            return Rule("sql", item)
    raise Invalid(
        f'a rule: one of {", ".join(NAMED_RULES)}, {{ set = value }} or {{ sql = "..." }}',
        repr(value),
    )


def parse(value: Any) -> DataConfig:
    if value is None or isinstance(value, DataConfig):
        return value or DataConfig()
    if not isinstance(value, dict):
        raise Invalid("a table", type(value).__name__)
    options: dict[str, Any] = {}
    for key, item in value.items():
        where = (key,)
        if key not in _KEYS:
            raise Invalid(f"a key of [data]{_did_you_mean(key, _KEYS)}", "an unknown key", where)
        try:
            if key == "scrub":
                if not isinstance(item, dict) or not all(
                    isinstance(t, dict) for t in item.values()
                ):
                    raise Invalid("tables of columns ([data.scrub.users])", repr(item))
                scrub: dict[str, dict[str, Rule]] = {}
                for table, columns in item.items():
                    for column, rule in columns.items():
                        try:
                            scrub.setdefault(table, {})[column] = _rule(rule)
                        except Invalid as exc:
                            raise Invalid(exc.args[0], exc.args[1], (table, column)) from None
                options["scrub"] = scrub
            elif key in ("truncate", "personal_ok", "after"):
                options[key] = _strings(item, "an array of non-empty strings")
            elif key == "keep":
                if not isinstance(item, dict) or not all(
                    isinstance(v, str) and v for v in item.values()
                ):
                    raise Invalid('a table of SQL conditions (orders = "...")', repr(item))
                options["keep"] = dict(item)
            elif key == "jobs":
                if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                    raise Invalid("an integer of at least 1", repr(item))
                options["jobs"] = item
            else:
                if not isinstance(item, str):
                    raise Invalid("a string", type(item).__name__)
                options[key] = item
        except Invalid as exc:
            raise Invalid(exc.args[0], exc.args[1], (*where, *exc.path)) from None
    return DataConfig(**options)


def _check(value: Any) -> Any:
    parse(value)  # the settings keep the table as given; steep.data parses it when used
    return value


def _check_parity(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("a table", type(value).__name__)
    for key, item in value.items():
        if key == "allow":
            try:
                _strings(item, 'an array of names or patterns (["DATABASE_URL", "mail.*"])')
            except Invalid as exc:
                raise Invalid(exc.args[0], exc.args[1], (key,)) from None
        elif key == "env_files":
            if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
                raise Invalid(
                    'a table of environment -> file (staging = ".env.staging")', repr(item), (key,)
                )
        else:
            raise Invalid("a key of [parity] (allow, env_files)", "an unknown key", (key,))
    return value


register_check("data", _check)
register_check("parity", _check_parity)
