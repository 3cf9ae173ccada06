"""`steep pipeline ...`: the delivery pipeline's projects and runs, its logs, and the
CI server itself (`steep pipeline server`)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.table import Table

from steep.cli import main
from steep.cli._common import _echo_json, _fail, console
from steep.ops.humanize import duration
from steep.settings import ConfigError


def _config() -> Any:
    from steep.pipeline import config

    try:
        return config.load()
    except ConfigError as exc:
        _fail(str(exc))


def _run_or_fail(run_id: str) -> Any:
    from steep.pipeline import get_run

    run = get_run(run_id)
    if run is None:
        _fail(f"no run {run_id!r} (never made, or older than the runs kept: keep_runs)")
    return run


def _short(text: str | None, width: int = 50) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _ref(run: Any) -> str:
    if run.meta.lane.startswith("merge:"):  # steep pipeline merge
        return f"merge of {run.meta.ref} into {run.meta.base_ref}"
    return f"#{run.meta.pr} {run.meta.ref}" if run.meta.pr is not None else run.meta.ref


@main.group()
def pipeline() -> None:
    """The delivery pipeline: projects, runs, logs, the CI server (docs/pipeline.md)."""


@pipeline.command("projects")
@click.option("--json", "as_json", is_flag=True)
def projects(as_json: bool) -> None:
    """The projects of this CI server, with the last run of each branch."""
    from steep.pipeline import store

    config = _config()
    rows: list[dict[str, Any]] = []
    for project in config.projects.values():
        lanes = store.latest_by_lane(project.name)
        rows.append(
            {
                "name": project.name,
                "repo": project.shown_repo,
                "forge": project.forge,
                "poll": project.poll,
                "accepts_webhooks": project.forge != "none"
                and project.webhook_secret() is not None,
                "lanes": {lane: {"run": r.id, "state": r.state} for lane, r in lanes.items()},
            }
        )
    if as_json:
        _echo_json({"projects": rows})
        return
    table = Table(title="Projects", title_justify="left")
    for col in ("project", "remote", "forge", "poll", "last runs"):
        table.add_column(col)
    for row in rows:
        forge = row["forge"] + (
            "" if row["accepts_webhooks"] or row["forge"] == "none" else " (no webhook secret)"
        )
        last = ", ".join(
            f"{lane.split(':', 1)[1]}: {v['state']}" for lane, v in row["lanes"].items()
        )
        table.add_row(
            row["name"],
            row["repo"],
            forge,
            f"{row['poll']:g} s" if row["poll"] else "-",
            last or "-",
        )
    console.print(table)


@pipeline.command("runs")
@click.argument("project")
@click.option("--branch", help="Only the runs of this branch.")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(project: str, branch: str | None, limit: int, as_json: bool) -> None:
    """A project's runs, newest first."""
    from steep.pipeline import list_runs

    _config().project(project)
    found = list_runs(project, limit=limit, branch=branch)
    if as_json:
        _echo_json({"runs": [r.to_dict() for r in found]})
        return
    table = Table(title=f"Runs of {project}", title_justify="left")
    for col in ("run", "ref", "commit", "trigger", "state", "duration", "message"):
        table.add_column(col)
    for r in found:
        table.add_row(
            r.id,
            _ref(r),
            (r.meta.sha or "")[:10],
            r.meta.trigger,
            r.state,
            duration(r.duration) if r.duration is not None else "-",
            _short(r.meta.message),
        )
    console.print(table)


@pipeline.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, as_json: bool) -> None:
    """One run: its commit, stages and steps."""
    run = _run_or_fail(run_id)
    if as_json:
        _echo_json(run.to_dict())
        return
    m = run.meta
    console.print(
        f"[bold]{run.id}[/bold] {run.state}" + (f": {run.reason}" if run.reason else ""),
        markup=True,
        highlight=False,
    )
    console.print(
        f"{m.project} {_ref(run)} at {m.sha or '(not resolved yet)'} ({m.trigger})",
        markup=False,
        highlight=False,
    )
    if m.message:
        console.print(f"{m.author or ''}: {m.message}", markup=False, highlight=False)
    if run.status_error:
        console.print(f"commit status not sent: {run.status_error}", markup=False)
    table = Table(title_justify="left")
    for col in ("stage", "step", "state", "exit", "duration", "attempt", "why"):
        table.add_column(col)
    for step in run.steps:
        table.add_row(
            step.stage,
            step.name,
            step.state,
            "-" if step.exit_code is None else str(step.exit_code),
            duration(step.duration) if step.duration is not None else "-",
            str(step.attempt or "-"),
            step.reason or "",
        )
    console.print(table)


@pipeline.command("logs")
@click.argument("run_id")
@click.option("--step", "step_name", help="Only this step's output.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: step, line.")
def logs_command(run_id: str, step_name: str | None, follow: bool, as_json: bool) -> None:
    """A run's output, step by step (each line prefixed by its step unless --step)."""
    from steep.pipeline import logs

    run = _run_or_fail(run_id)
    if step_name and run.steps and run.step(step_name) is None:
        known = ", ".join(s.name for s in run.steps)
        _fail(f"run {run_id} has no step {step_name!r} (steps: {known})")

    def names() -> list[str]:
        current = _run_or_fail(run_id)
        return [step_name] if step_name else [s.name for s in current.steps]

    def emit(step: str, line: str) -> None:
        if as_json:
            click.echo(json.dumps({"step": step, "line": line}))
        else:
            click.echo(line if step_name else f"{step} | {line}")

    if not follow:
        for name in names():
            for _, line in logs.read(run_id, name, count=10**7):
                emit(name, line)
        return
    cursors: dict[str, str] = {}
    while True:
        final = _run_or_fail(run_id).final
        wrote = False
        for name in names():
            for cursor, line in logs.read(run_id, name, after=cursors.get(name, "0-0")):
                cursors[name] = cursor
                emit(name, line)
                wrote = True
        if final and not wrote:
            break
        sys.stdout.flush()
        if not wrote:
            time.sleep(0.2)
    run = _run_or_fail(run_id)
    click.echo(f"run {run.id} {run.state}" + (f": {run.reason}" if run.reason else ""), err=True)
    sys.exit(0 if run.state == "passed" else 1)


@pipeline.command("run")
@click.argument("project")
@click.option("--ref", help="A branch or tag (default: the remote's default branch).")
@click.option("--sha", help="An exact commit.")
@click.option("--json", "as_json", is_flag=True)
def run_command(project: str, ref: str | None, sha: str | None, as_json: bool) -> None:
    """Start a run by hand; prints its id."""
    from steep.pipeline import git, start_run

    config = _config()
    settings = config.project(project)
    if ref and sha:
        _fail("give --ref or --sha, not both")
    if not ref and not sha:
        try:
            ref = git.default_branch(settings.repo)
        except git.GitError as exc:
            _fail(f"cannot read the default branch of {settings.shown_repo}: {exc}")
    if sha:  # a commit by hand is on no branch: it has a lane of its own
        run_id, _ = start_run(
            project, sha[:12], trigger="manual", sha=sha, lane=f"commit:{sha[:12]}"
        )
    else:
        run_id, _ = start_run(project, ref or "", trigger="manual")
    if as_json:
        _echo_json({"id": run_id})
    else:
        click.echo(run_id)


@pipeline.command("cancel")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def cancel(run_id: str, as_json: bool) -> None:
    """Cancel a run: its waiting steps never start, its running ones are ended."""
    from steep.pipeline import cancel_run

    _run_or_fail(run_id)
    done = cancel_run(run_id, "cancelled from the command line")
    state = _run_or_fail(run_id).state
    if as_json:
        _echo_json({"id": run_id, "cancelled": done, "state": state})
    elif done:
        click.echo(f"run {run_id} cancelled")
    else:
        click.echo(f"run {run_id} had finished already: {state}")


@pipeline.command("rerun")
@click.argument("run_id")
@click.option("--failed", is_flag=True, help="Only the steps that did not pass.")
@click.option("--json", "as_json", is_flag=True)
def rerun(run_id: str, failed: bool, as_json: bool) -> None:
    """Run the same commit again (whole, or only its failed steps); prints the new id."""
    from steep.pipeline import RunRefused
    from steep.pipeline import rerun as do_rerun

    _run_or_fail(run_id)
    try:
        new = do_rerun(run_id, failed_only=failed)
    except RunRefused as exc:
        _fail(str(exc))
    if as_json:
        _echo_json({"id": new, "rerun_of": run_id, "failed_only": failed})
    else:
        click.echo(new)


@pipeline.command("server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8500, show_default=True)
@click.option("--builders", type=int, default=0, help="Steps run at once here (default: cores).")
def server(host: str, port: int, builders: int) -> None:
    """Webhooks, the dashboard, a build worker and the poller, in one command."""
    from steep.pipeline.server import CredentialsRequired, serve

    _config()
    try:
        serve(host, port, builders=builders)
    except CredentialsRequired as exc:
        _fail(str(exc))


# the environments' commands, the merge gate and the demo join the group
from steep.cli import pipeline_demo, pipeline_deploys, pipeline_merge  # noqa: E402, F401
