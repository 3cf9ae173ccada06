"""`steep pipeline envs|history|lock|unlock|approve|reject`: what runs in each environment,
its deploys, the lock that holds deploys back, and the approvals deploys wait for."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from steep.cli._common import _echo_json, _fail, console
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
    from steep.pipeline import deploys, environments_view

    _config().project(project)
    rows: list[dict[str, Any]] = []
    for card in environments_view.project_view(project)["environments"]:
        s = deploys.state(project, card["name"])
        rows.append(
            {
                "name": card["name"],
                "branch": card["branch"],
                "url": card["url"],
                "sha": card["sha"],
                "tree": card["tree"],
                "release": card["release"],
                "deployed_at": card["deployed_at"],
                "state": s.get("state"),
                "last_deploy": s.get("deploy"),
                "locked_by": s.get("locked_by"),
                "lock_reason": s.get("lock_reason"),
                "problem": card["problem"],
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
    for row in rows:
        if row["problem"]:
            console.print(f"[yellow]{row['name']}: {row['problem']}[/]", highlight=False)


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
    for col in ("deploy", "commit", "state", "trigger", "started", "release", "approval", "why"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.id,
            d.sha[:12],
            d.state + (f" for {d.waiting_for}" if d.state == "waiting" and d.waiting_for else ""),
            d.trigger,
            _when(d.started_at),
            d.release or "-",
            _approval(d),
            d.reason or "",
        )
    console.print(table)


def _approval(d: Any) -> str:
    if d.approvals:
        a = d.approvals[-1]
        return f"{a.decision} by {a.by} at {_when(a.at)}"
    if d.state == "waiting" and d.waiting_for == "approval":
        return f"waiting until {_when(d.expires_at)}"
    return "-"


@pipeline.command("approve")
@click.argument("project")
@click.argument("deploy_id", metavar="DEPLOY")
@click.option("--by", help="Who approves (default: this user).")
@click.option("--json", "as_json", is_flag=True)
def approve(project: str, deploy_id: str, by: str | None, as_json: bool) -> None:
    """Approve a deploy waiting for approval (its id: steep pipeline history): it goes on."""
    from steep.pipeline import approvals
    from steep.pipeline.deploy_step import Refused

    _config().project(project)
    try:
        done = approvals.approve(project, deploy_id, by or getpass.getuser())
    except Refused as exc:
        _fail(str(exc))
    if as_json:
        _echo_json(done.to_dict())
    else:
        a = done.approvals[-1]
        click.echo(f"{done.id} approved by {a.by}: {done.env} deploys {done.sha[:12]} now")


@pipeline.command("reject")
@click.argument("project")
@click.argument("deploy_id", metavar="DEPLOY")
@click.option("--reason", default="", help="Why: recorded with the deploy and its run.")
@click.option("--by", help="Who rejects (default: this user).")
@click.option("--json", "as_json", is_flag=True)
def reject(project: str, deploy_id: str, reason: str, by: str | None, as_json: bool) -> None:
    """Reject a deploy waiting for approval: it fails, and its run with it."""
    from steep.pipeline import approvals
    from steep.pipeline.deploy_step import Refused

    _config().project(project)
    try:
        done = approvals.reject(project, deploy_id, by or getpass.getuser(), reason)
    except Refused as exc:
        _fail(str(exc))
    if as_json:
        _echo_json(done.to_dict())
    else:
        click.echo(f"{done.id} {done.reason}")


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


def _live_sha(project: str, env: str) -> dict[str, str]:
    from steep.pipeline import deploys

    return deploys.state(project, env)


@pipeline.command("deploy")
@click.argument("project")
@click.argument("env")
@click.option("--ref", help="A branch or tag (default: the branch the environment deploys).")
@click.option("--sha", help="An exact commit.")
@click.option("--json", "as_json", is_flag=True)
def deploy(project: str, env: str, ref: str | None, sha: str | None, as_json: bool) -> None:
    """Test a commit and deploy it to ENV (a run whose last stage is that deploy)."""
    from steep.pipeline import start_run

    _config().project(project)
    if ref and sha:
        _fail("give --ref or --sha, not both")
    if not ref and not sha:
        ref = _live_sha(project, env).get("branch")
        if not ref:
            _fail(f"{env} has not been deployed yet, so its branch is unknown here: give --ref")
    label = ref or (sha or "")[:12]
    run_id, _ = start_run(
        project, label, trigger="manual", sha=sha, lane=f"deploy:{env}", deploy_to=env
    )
    if as_json:
        _echo_json({"id": run_id})
    else:
        click.echo(run_id)


@pipeline.command("promote")
@click.argument("project")
@click.argument("source")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True)
def promote(project: str, source: str, target: str, as_json: bool) -> None:
    """Deploy to TARGET exactly what runs in SOURCE (its artifact, not rebuilt or retested)."""
    from steep.pipeline import environments_view

    _config().project(project)
    try:
        run_id, sha = environments_view.promote(project, source, target)
    except environments_view.Refused as exc:
        _fail(str(exc))
    if as_json:
        _echo_json({"id": run_id, "sha": sha})
    else:
        click.echo(run_id)


@pipeline.command("rollback")
@click.argument("project")
@click.argument("env")
@click.option("--release", help="The release to go back to (default: the one before).")
@click.option("--json", "as_json", is_flag=True)
def rollback(project: str, env: str, release: str | None, as_json: bool) -> None:
    """Switch ENV back to an earlier release, restart it and check its health."""
    from steep.pipeline import environments_view

    _config().project(project)
    try:
        result = environments_view.rollback(project, env, release, getpass.getuser(), 600)
    except Exception as exc:
        _fail(f"the rollback did not finish: {exc}")
    if result is None:
        _fail("the rollback did not finish within 600 s: see `steep pipeline history`")
    if as_json:
        _echo_json(result)
    elif result.get("state") == "succeeded":
        click.echo(f"{project} {env} rolled back to {result['release']} ({result['id']})")
    else:
        _fail(f"not rolled back: {result.get('reason')}")


@pipeline.command("copy-data")
@click.argument("project")
@click.argument("env")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it ends.")
@click.option("--timeout", type=float, default=3600.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def copy_data(project: str, env: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Copy the data of ENV's `data_from` environment over ENV's, scrubbed (`steep data
    copy` run in ENV's current release on a build machine); recorded in its history."""
    import time

    from steep.pipeline import data_copies
    from steep.settings import ConfigError

    try:
        copy = data_copies.request(project, env, getpass.getuser())
    except (data_copies.CopyRefused, ConfigError) as exc:
        _fail(f"not copied: {exc}")
    if not as_json:
        click.echo(f"copying {copy.source}'s data into {env}: {copy.id}")
    deadline = time.monotonic() + timeout
    while wait and copy.state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        copy = data_copies.get(project, env, copy.id) or copy
    if as_json:
        _echo_json(copy.to_dict())
    elif copy.state == "succeeded":
        click.echo("\n".join(copy.lines[-5:]))
        click.echo(f"{env} now holds a scrubbed copy of {copy.source}'s data ({copy.id})")
    elif copy.state == "failed":
        _fail(f"the copy failed: {copy.reason}")
    if copy.state == "failed":
        raise SystemExit(1)
