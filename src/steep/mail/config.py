"""The `[mail]` table of steep.toml (and `[<env>.mail]` over it): how mail leaves, and
whether this environment intercepts it.

The check runs when the file is read, so a typo in `[staging.mail]` stops a laptop's
worker, not only staging's. What depends on the whole table (interception needs someone to
send to) is checked when mail is sent, by `MailConfig.current`, with a message that says
what to add.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steep.settings import ConfigError, Invalid, Settings, get_settings, register_check
from steep.settings_file import _did_you_mean

# environments that intercept mail unless their table says `intercept = false`
INTERCEPTED_BY_DEFAULT = ("staging",)
_ADDRESS = re.compile(r"[^@\s<>,]+@[^@\s<>,]+")
_DOMAIN = re.compile(r"@[^@\s<>,]+")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("a string", type(value).__name__)
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false", repr(value))
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise Invalid("a port number (1 to 65535)", repr(value))
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise Invalid("a number of seconds greater than 0", repr(value))
    return float(value)


def _retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid("an integer of at least 0", repr(value))
    return value


def _addresses(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("an array of addresses", repr(value))
    for item in value:
        if not _ADDRESS.fullmatch(item):
            raise Invalid("an array of addresses (name@example.com)", repr(item))
    return list(value)


def _allowed(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("an array of addresses or @domains", repr(value))
    for item in value:
        if not (_ADDRESS.fullmatch(item) or _DOMAIN.fullmatch(item)):
            raise Invalid("an array of addresses or @domains (@example.com)", repr(item))
    return [item.lower() for item in value]


def _sender(value: Any) -> str:
    text = _text(value)
    if text and "@" not in text:
        raise Invalid("an address (shop@example.com)", repr(text))
    return text


_KEYS: dict[str, Callable[[Any], Any]] = {
    "host": _text,
    "port": _port,
    "starttls": _flag,
    "tls": _flag,
    "username_env": _text,
    "password_env": _text,
    "sender": _sender,
    "queue": _text,
    "ca_file": _text,
    "timeout": _seconds,
    "retries": _retries,
    "intercept": _flag,
    "intercept_to": _addresses,
    "allow": _allowed,
    "subject_prefix": _text,
}


def check_table(value: Any) -> dict[str, Any]:
    """The `[mail]` check registered with the settings: every key known and well typed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("a table", type(value).__name__)
    checked: dict[str, Any] = {}
    for key, item in value.items():
        check = _KEYS.get(key)
        if check is None:
            hint = _did_you_mean(key, tuple(_KEYS))
            raise Invalid(f"a key of [mail]{hint}", "an unknown key", (key,))
        try:
            checked[key] = check(item)
        except Invalid as exc:
            raise Invalid(exc.args[0], exc.args[1], (key,)) from None
    if checked.get("tls") and checked.get("starttls"):
        raise Invalid("either tls or starttls, not both", "both true", ("tls",))
    return checked


register_check("mail", check_table)


@dataclass(frozen=True, slots=True)
class MailConfig:
    """The effective mail settings of one environment."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    tls: bool = False
    username_env: str = ""
    password_env: str = ""
    sender: str = ""
    queue: str = "default"
    # a CA bundle for a relay whose certificate the system does not trust (an internal CA)
    ca_file: str = ""
    timeout: float = 30.0
    retries: int = 10
    intercept: bool = False
    intercept_to: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    subject_prefix: str = ""

    @classmethod
    def current(cls, settings: Settings | None = None) -> MailConfig:
        """The mail settings of `settings` (the process's own by default), checked as a
        whole: an environment that intercepts must say where the mail goes instead."""
        settings = settings or get_settings()
        table = dict(settings.mail or {})
        intercept = table.pop("intercept", settings.env in INTERCEPTED_BY_DEFAULT)
        prefix = table.pop("subject_prefix", f"[{settings.env}] " if intercept else "")
        config = cls(
            env=settings.env,
            intercept=intercept,
            subject_prefix=prefix,
            intercept_to=tuple(table.pop("intercept_to", ())),
            allow=tuple(table.pop("allow", ())),
            **table,
        )
        if config.intercept and not config.intercept_to:
            raise ConfigError(
                f"[{settings.env}.mail]: mail is intercepted in {settings.env} but "
                'intercept_to is empty; add intercept_to = ["team@example.com"] '
                "(or intercept = false to send to the real recipients)"
            )
        return config

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) read from the variables the settings name, or None."""
        if not self.username_env:
            return None
        user = os.environ.get(self.username_env)
        password = os.environ.get(self.password_env, "") if self.password_env else ""
        if not user:
            raise ConfigError(
                f"[mail] username_env: the variable {self.username_env} is not set; "
                "set it (and password_env's) in the worker's environment"
            )
        return user, password

    def __repr__(self) -> str:
        # names of variables only, never their values
        return (
            f"MailConfig(env={self.env!r}, host={self.host!r}, port={self.port}, "
            f"intercept={self.intercept}, intercept_to={list(self.intercept_to)!r})"
        )
