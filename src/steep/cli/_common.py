"""What every command shares, light enough for `steep worker`: the console (made on first
use, as rich is not needed to run a worker), an error as one line, JSON output, and asking
before a bulk change.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

_console: Console | None = None


def get_console() -> Console:
    """The terminal output, made on first use (rich is not needed to run a worker)."""
    global _console
    if _console is None:
        from rich.console import Console

        # Piped output (scripts, CI logs) gets wide lines instead of a wrapped 80 columns.
        _console = Console(width=None if sys.stdout.isatty() else 160)
    return _console


def __getattr__(name: str) -> Any:
    if name == "console":  # `from steep.cli._common import console` in the command modules
        return get_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fail(message: str) -> NoReturn:
    # plain text: messages quote user input (TOML tables in brackets, JSON) verbatim
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _confirm(yes: bool, message: str) -> None:
    if not yes and not click.confirm(message, default=False):
        _fail("cancelled")
