"""`steep pipeline envs|history|lock|unlock`: what runs in each environment, its deploys,
and the lock that holds deploys back."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from steep.cli._common import _echo_json, console
from steep.cli.pipeline import _config, pipeline


def _when(ts: str | float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pipeline.command("envs")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True)
def envs(project: str, as_json: bool) -> None:
    """What runs in each environment of a project: commit, tree, release, since when."""
    from steep.pipeline import deploys

    _config().project(project)
    rows: list[dict[str, Any]] = []
    for name in deploys.names(project):
        s = deploys.state(project, name)
        rows.append(
            {
                "name": name,
                "branch": s.get("branch"),
                "url": s.get("url"),
                "sha": s.get("sha"),
                "tree": s.get("tree"),
                "release": s.get("release"),
                "deployed_at": float(s["deployed_at"]) if s.get("deployed_at") else None,
                "state": s.get("state"),
                "last_deploy": s.get("deploy"),
                "locked_by": s.get("locked_by"),
                "lock_reason": s.get("lock_reason"),
            }
        )
    if as_json:
        _echo_json({"environments": rows})
        return
    table = Table(title=f"Environments of {project}", title_justify="left")
    for col in ("env", "branch", "commit", "release", "deployed", "last deploy", "lock"):
        table.add_column(col)
    for row in rows:
        lock = f"{row['locked_by']}: {row['lock_reason']}" if row["locked_by"] else "-"
        table.add_row(
            row["name"],
            row["branch"] or "-",
            (row["sha"] or "-")[:12],
            row["release"] or "-",
            _when(row["deployed_at"]),
            f"{row['last_deploy'] or '-'} {row['state'] or ''}",
            lock,
        )
    console.print(table)


@pipeline.command("history")
@click.argument("project")
@click.argument("env")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def history(project: str, env: str, limit: int, as_json: bool) -> None:
    """An environment's deploys, newest first, with their phases, checks and rollbacks."""
    from steep.pipeline import deploys

    _config().project(project)
    found = deploys.history(project, env, limit)
    if as_json:
        _echo_json({"deploys": [d.to_dict() for d in found]})
        return
    table = Table(title=f"Deploys of {project} to {env}", title_justify="left")
    for col in ("deploy", "commit", "state", "trigger", "started", "release", "why"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.id,
            d.sha[:12],
            d.state,
            d.trigger,
            _when(d.started_at),
            d.release or "-",
            d.reason or "",
        )
    console.print(table)


@pipeline.command("lock")
@click.argument("project")
@click.argument("env")
@click.option("--reason", required=True, help="Why: shown to whoever tries to deploy.")
def lock(project: str, env: str, reason: str) -> None:
    """Hold deploys to an environment back (a freeze), with the reason."""
    from steep.pipeline import deploys

    _config().project(project)
    deploys.lock(project, env, getpass.getuser(), reason)
    click.echo(f"{project} {env} locked: {reason}")


@pipeline.command("unlock")
@click.argument("project")
@click.argument("env")
def unlock(project: str, env: str) -> None:
    """Let deploys to an environment go on."""
    from steep.pipeline import deploys

    _config().project(project)
    was = deploys.unlock(project, env)
    click.echo(f"{project} {env} unlocked" if was else f"{project} {env} was not locked")
