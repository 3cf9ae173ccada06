"""`steep cron list|pause|resume|trigger|forget`: periodic jobs on the command line."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from steep import ops
from steep.cli import main
from steep.cli._common import _echo_json, _fail, console
from steep.cli._ops import _run, _when


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def cron(ctx: click.Context, as_json: bool) -> None:
    """List periodic jobs with their next and last run; pause, resume or trigger one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(cron_list, as_json=as_json)


@cron.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cron_list(as_json: bool) -> None:
    """Every entry a worker has published (`steep worker` publishes its entries on start)."""
    entries = ops.cron_entries()
    if as_json:
        _echo_json([asdict(e) for e in entries])
        return
    table = Table(title="Cron", title_justify="left")
    for col in ("entry", "job", "schedule", "timezone", "queue", "next run", "last run", ""):
        table.add_column(col)
    for e in entries:
        state = "paused" if e.paused else ""
        if e.stale:
            state = (state + " stale").strip()
        table.add_row(
            e.name,
            e.job,
            e.schedule,
            e.timezone,
            e.queue,
            _when(e.next_run),
            _when(e.last_run),
            state,
        )
    console.print(table, highlight=False)
    if not entries:
        console.print("no cron entries: start a worker that imports @job(cron=...) jobs")


@cron.command("pause")
@click.argument("name")
def cron_pause(name: str) -> None:
    """The entry enqueues nothing until resumed; ticks meanwhile are never run."""
    _run(ops.pause_cron, name)
    console.print(f"paused {name}", highlight=False)


@cron.command("resume")
@click.argument("name")
def cron_resume(name: str) -> None:
    """The entry runs again from its next tick on."""
    if not _run(ops.resume_cron, name):
        _fail(f"{name} is not paused")
    console.print(f"resumed {name}", highlight=False)


@cron.command("trigger")
@click.argument("name")
def cron_trigger(name: str) -> None:
    """Enqueue one run of the entry's job now (its schedule is not changed)."""
    job_id = _run(ops.trigger_cron, name)
    console.print(f"enqueued {job_id} for {name}", highlight=False)


@cron.command("forget")
@click.argument("name")
def cron_forget(name: str) -> None:
    """Drop an entry that was removed from the code or steep.toml."""
    _run(ops.forget_cron, name)
    console.print(f"forgot {name} (a worker that still has it publishes it again)")
