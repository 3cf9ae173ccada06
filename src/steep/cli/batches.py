"""`steep batches [list|show]`: batches, chains and groups with their progress and
callbacks."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from steep import ops
from steep.cli import main
from steep.cli._common import _echo_json, _fail, console
from steep.cli._ops import _when


def _batch_dict(b: ops.BatchStatus) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(b), "done": b.done, "percent": round(b.percent, 1)}


def _batch_progress(b: ops.BatchStatus) -> str:
    return f"{b.done}/{b.total} ({b.percent:.0f}%)"


@main.group(invoke_without_command=True)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option(
    "-s", "--state", type=click.Choice(("open", "running", "succeeded", "failed")), default=None
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def batches(ctx: click.Context, limit: int, state: str | None, as_json: bool) -> None:
    """Recent batches, chains and groups with their progress (newest first)."""
    if ctx.invoked_subcommand:
        return
    ctx.invoke(batches_list, limit=limit, state=state, as_json=as_json)


@batches.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option(
    "-s", "--state", type=click.Choice(("open", "running", "succeeded", "failed")), default=None
)
@click.option("--json", "as_json", is_flag=True)
def batches_list(limit: int, state: str | None, as_json: bool) -> None:
    """Recent batches, newest first."""
    rows = ops.batches(limit, state=state)
    if as_json:
        _echo_json({"batches": [_batch_dict(b) for b in rows]})
        return
    table = Table(title="Batches", title_justify="left")
    for col in ("id", "kind", "state", "description", "done", "pending", "failed", "created"):
        table.add_column(col, overflow="fold" if col == "id" else "ellipsis")
    for b in rows:
        table.add_row(
            b.id,
            b.kind,
            b.state,
            b.description or "-",
            _batch_progress(b),
            str(b.pending),
            str(b.failed),
            _when(b.created_at),
        )
    console.print(table)


@batches.command("show")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True)
def batches_show(batch_id: str, as_json: bool) -> None:
    """One batch: progress, callbacks, dead members."""
    b = ops.get_batch(batch_id)
    if b is None:
        _fail(f"no batch {batch_id} (never made, or expired after it completed)")
    if as_json:
        data = _batch_dict(b)
        if b.kind in ("group", "chain"):
            data["results"] = ops.batch_results(batch_id)
        _echo_json(data)
        return
    table = Table(show_header=False, title=f"{b.kind} {b.id}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    steps = f" of {b.steps} steps" if b.steps else ""
    rows = [
        ("state", b.state),
        ("description", b.description or "-"),
        ("progress", _batch_progress(b) + steps),
        ("pending", str(b.pending)),
        ("succeeded", str(b.succeeded)),
        ("failed (dead)", str(b.failed)),
        ("created", _when(b.created_at)),
        ("closed", _when(b.closed_at)),
        ("complete", _when(b.complete_at)),
        ("succeeded at", _when(b.success_at)),
        ("parent", b.parent or "-"),
        ("on_complete", _callback_line(b, "complete", b.on_complete)),
        ("on_success", _callback_line(b, "success", b.on_success)),
    ]
    if b.meta:
        rows.append(("meta", json.dumps(b.meta)))
    if b.failed_ids:
        rows.append(("dead members", " ".join(b.failed_ids)))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _callback_line(b: ops.BatchStatus, kind: str, name: str | None) -> str:
    if not name:
        return "-"
    if kind in b.callbacks_done:
        return f"{name} (ran)"
    fired = b.complete_at if kind == "complete" else b.success_at
    return f"{name} ({'enqueued' if fired else 'waiting'})"
