"""The `steep` command line: the main group, and which module holds each command.

A command's module is imported only when that command runs (or for --help), so
`steep worker` starts without rich or the operations layer (steep.ops) loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from steep.cli._common import _fail
from steep.settings import ConfigError, configure, get_settings

# The module defining each command, imported only when one of its commands runs (or for
# --help): importing it registers the command on `main`.
_LAZY_COMMANDS = {
    **dict.fromkeys(("worker", "server", "demo"), "steep.cli.worker"),
    "enqueue": "steep.cli.enqueue",
    "status": "steep.cli.status",
    "jobs": "steep.cli.jobs",
    "dead": "steep.cli.dead",
    "queues": "steep.cli.queues",
    "workers": "steep.cli.workers",
    "batches": "steep.cli.batches",
    **dict.fromkeys(("stats", "limits"), "steep.cli.stats"),
    "cron": "steep.cli.cron",
    "web": "steep.cli.web",
    "data": "steep.cli.data",
    "env": "steep.cli.env",
    "pipeline": "steep.cli.pipeline",
    "doctor": "steep.cli.doctor",
}


class SteepGroup(click.Group):
    """Loads each command on demand, and turns configuration problems into
    one clear line instead of a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _LAZY_COMMANDS:
            importlib.import_module(_LAZY_COMMANDS[cmd_name])  # registers it on `main`
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(str(exc))


@click.group(cls=SteepGroup)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level (default from settings: info).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log lines as text, or JSON for log shippers.",
)
@click.version_option(package_name="steep")
def main(log_level: str | None, log_format: str | None) -> None:
    """steep: background jobs on Redis/Valkey that never lose work."""
    from steep.logs import setup_logging

    overrides: dict[str, Any] = {}
    if log_level:
        overrides["log_level"] = log_level.upper()
    if log_format:
        overrides["log_format"] = log_format
    settings = configure(**overrides) if overrides else get_settings()
    setup_logging(settings.log_level, settings.log_format)
    # `steep worker` reads the settings again after importing the application, and
    # applies these flags on top of whatever the application configured
    click.get_current_context().meta["steep.overrides"] = overrides
