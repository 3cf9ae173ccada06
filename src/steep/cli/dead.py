"""`steep dead [retry|delete]`: jobs that failed for good, listed, queued again or deleted.

Acting on several (or `--all`) asks first unless `--yes`.
"""

from __future__ import annotations

import click

from steep import ops
from steep.cli import main
from steep.cli._common import _confirm, _fail, console
from steep.cli.jobs import _by_queue, jobs_list


@main.group(invoke_without_command=True)
@click.option("-q", "--queue", help="One queue (default: every queue).")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dead(ctx: click.Context, queue: str | None, limit: int, as_json: bool) -> None:
    """List dead jobs (newest first); retry or delete them."""
    if ctx.invoked_subcommand:
        return
    ctx.invoke(jobs_list, queue=queue, state="dead", limit=limit, as_json=as_json)


def _dead_action(ids: tuple[str, ...], all_: bool, queue: str | None, yes: bool, verb: str) -> int:
    if bool(ids) == all_:
        _fail("give job ids or --all")
    if all_:
        names = [queue] if queue else ops.queue_names()
        count = sum(ops.queue(n).dead for n in names)
        _confirm(
            yes, f"{verb.capitalize()} all {count} dead jobs{f' in {queue}' if queue else ''}?"
        )
        action = ops.retry_all if verb == "retry" else ops.delete_all
        return sum(action(n, "dead") for n in names)
    if len(ids) > 1:
        _confirm(yes, f"{verb.capitalize()} {len(ids)} dead jobs?")
    if verb == "retry":
        return sum(ops.retry_jobs(q, g) for q, g in _by_queue(ids, queue).items())
    return sum(ops.delete_jobs(q, g, only="dead") for q, g in _by_queue(ids, queue).items())


@dead.command("retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead job.")
@click.option("-q", "--queue", help="Only this queue.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dead_retry(ids: tuple[str, ...], all_: bool, queue: str | None, yes: bool) -> None:
    """Queue dead jobs again."""
    console.print(f"queued {_dead_action(ids, all_, queue, yes, 'retry')}", highlight=False)


@dead.command("delete")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead job.")
@click.option("-q", "--queue", help="Only this queue.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dead_delete(ids: tuple[str, ...], all_: bool, queue: str | None, yes: bool) -> None:
    """Delete dead jobs for good."""
    console.print(f"deleted {_dead_action(ids, all_, queue, yes, 'delete')}", highlight=False)
