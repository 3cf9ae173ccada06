"""`steep queues [pause|resume|clear]`: the queues with their sizes and latency, and
pausing, resuming or clearing one (clearing asks first unless `--yes`)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from steep import ops
from steep.cli import main
from steep.cli._common import _confirm, _echo_json, console
from steep.cli._ops import _age


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def queues(ctx: click.Context, as_json: bool) -> None:
    """List queues; pause, resume or clear one."""
    if ctx.invoked_subcommand:
        return
    infos = ops.queues()
    if as_json:
        _echo_json([_queue_dict(q) for q in infos])
        return
    table = Table(title="Queues", title_justify="left")
    for col in ("queue", "waiting", "latency", "scheduled", "dead", "processed", "failed", ""):
        table.add_column(col, justify="left" if col in ("queue", "") else "right")
    for q in infos:
        table.add_row(
            q.name,
            str(q.size),
            _age(q.oldest_age),
            str(q.scheduled),
            str(q.dead),
            str(q.processed),
            str(q.failed),
            "paused" if q.paused else "",
        )
    console.print(table)


def _queue_dict(q: ops.QueueInfo) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(q)


@queues.command("pause")
@click.argument("name")
def queues_pause(name: str) -> None:
    """Workers take no more jobs from the queue."""
    ops.pause(name)
    console.print(f"paused {name}", highlight=False)


@queues.command("resume")
@click.argument("name")
def queues_resume(name: str) -> None:
    """Workers take jobs from the queue again."""
    ops.resume(name)
    console.print(f"resumed {name}", highlight=False)


@queues.command("clear")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def queues_clear(name: str, yes: bool) -> None:
    """Delete every job waiting in the queue (scheduled, running and dead stay)."""
    size = ops.queue(name).size
    _confirm(yes, f"Delete the {size} jobs waiting in {name}?")
    console.print(f"deleted {ops.clear(name)} jobs from {name}", highlight=False)
