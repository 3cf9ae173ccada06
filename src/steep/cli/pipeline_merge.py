"""`steep pipeline merge`: the merge gate (steep.pipeline.gate). The merge of a branch
into a target is tested, and the target moved on the origin to exactly that commit only
when it is green."""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from steep.pipeline.gate import MergeStatus

from steep.cli._common import _echo_json, _fail
from steep.cli.pipeline import _config, pipeline

# while the merge is still waiting after this long, say what it waits for
NO_WORKER_HINT = 10.0


def _who() -> str:
    """The person asking, as git would sign their commits here (GIT_AUTHOR_NAME and
    _EMAIL, then user.name and user.email), or the OS user."""
    from steep.pipeline import git

    mine = {k: v for k, v in os.environ.items() if k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL")}
    try:
        ident = git.run(["var", "GIT_AUTHOR_IDENT"], env=mine).stdout.strip()
        return ident.rsplit(" ", 2)[0]  # "Name <mail> 1764650000 +0000"
    except git.GitError:  # no identity git would accept
        user = getpass.getuser()
        return f"{user} <{user}@{socket.gethostname()}>"


def _say(text: str, err: bool = False) -> None:
    click.echo(text, err=err)
    sys.stdout.flush()


@pipeline.command("merge")
@click.argument("project")
@click.argument("branch")
@click.option("--into", "target", required=True, help="The branch to move (staging, main...).")
@click.option("--author", help='Who asks, "Name <mail>" (default: git config, or the OS user).')
@click.option("--ff", is_flag=True, help="Move the target to the branch itself when it can.")
@click.option("--no-wait", is_flag=True, help="Return once the merge is queued; print its id.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True)
def merge(
    project: str,
    branch: str,
    target: str,
    author: str | None,
    ff: bool,
    no_wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Test the merge of BRANCH into --into, and move it there only when green.

    Exits 0 when the target was moved to the tested commit, 1 when the merge failed or
    was refused (the target did not move)."""
    from steep.pipeline import RunRefused, gate

    _config().project(project)
    try:
        who = author or _who()
        gate.parse_author(who)
        run_id = gate.request_merge(project, branch, target, author=who, ff=ff)
    except (ValueError, RunRefused) as exc:
        _fail(str(exc))
    if no_wait:
        if as_json:
            _echo_json({"id": run_id, "state": "waiting"})
        else:
            click.echo(run_id)
        return
    if not as_json:
        _say(f"{run_id}: merge of {branch} into {target}, asked by {who}")
    final = _follow(run_id, timeout, quiet=as_json)
    if as_json:
        _echo_json(final.to_dict())
    else:
        _say(final.line or f"{run_id}: {final.state}")
    sys.exit(0 if final.state == "merged" else 1)


def _follow(run_id: str, timeout: float, quiet: bool) -> MergeStatus:
    """Print the merge's progress until it is settled (or `timeout` passes); its status."""
    from steep.pipeline import gate, get_run

    started = time.monotonic()
    said: set[str] = set()
    shown_steps: dict[str, str] = {}

    def once(key: str, text: str, err: bool = False) -> None:
        if key not in said and not quiet:
            said.add(key)
            _say(text, err)

    while True:
        current = gate.status(run_id)
        if current is None:
            _fail(f"the merge run {run_id} is gone (forgotten: keep_runs)")
        if current.ahead:
            once(f"ahead:{current.ahead}", f"waiting for {current.ahead}, the merge before it")
        if current.sha and current.base and current.head:
            how = "as is (--ff)" if current.sha == current.head else f"as {current.sha[:12]}"
            once(
                "testing",
                f"testing {current.branch} ({current.head[:12]}) into {current.target}"
                f" ({current.base[:12]}) {how}",
            )
        run = get_run(run_id)
        for step in run.steps if run else []:
            if step.state != shown_steps.get(step.name) and step.state not in ("queued",):
                shown_steps[step.name] = step.state
                if step.state != "running":
                    why = f": {step.reason}" if step.reason else ""
                    once(f"step:{step.name}", f"  {step.name} {step.state}{why}")
        if current.settled:
            return current
        waited = time.monotonic() - started
        if (
            waited > min(NO_WORKER_HINT, timeout / 2)
            and current.run_state == "queued"
            and not current.ahead
        ):
            once(
                "hint",
                f"nothing has taken {run_id} after {waited:.0f} s: is a steep pipeline"
                " server (or a worker of steep.pipeline.jobs on pipeline-control) running?",
                err=True,
            )
        if waited > timeout:
            _say(
                f"error: {run_id} is not settled after {timeout:g} s ({current.state}):"
                f" see steep pipeline show {run_id}",
                err=True,
            )
            sys.exit(1)
        time.sleep(0.2)
