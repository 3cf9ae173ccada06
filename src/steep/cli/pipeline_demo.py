"""`steep pipeline demo`: the delivery flow, played on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from steep.cli._common import console
from steep.cli.pipeline import pipeline


@pipeline.command("demo")
@click.option("--keep", is_flag=True, help="Keep the demo's folder (repositories, releases, logs).")
@click.option(
    "--dir",
    "where",
    type=click.Path(file_okay=False, path_type=Path),
    help="Make the demo's folder in this directory (default: the system's temporary one).",
)
@click.option(
    "--wait/--no-wait", default=True, help="Keep everything up until Enter (on a terminal)."
)
def demo(keep: bool, where: Path | None, wait: bool) -> None:
    """Play the delivery flow: a sample app's tests as jobs, staging and production
    deployed, promoted, a failing test stopped, a failing health check rolled back.

    Everything runs here, on an embedded Valkey of its own: git repositories, the CI
    server, its workers and the two app processes (staging and production)."""
    from steep.pipeline.demo import play

    sys.exit(play(console, keep=keep, where=where, wait=wait))
