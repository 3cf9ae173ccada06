"""`steep jobs list|show|edit|move|delete|retry|cancel|interrupt|resume`: single jobs.

Tables for people, `--json` for scripts. Deleting several jobs asks first unless `--yes`.
A job is found by its id alone (ids are unique across queues) unless `--queue` is given.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from steep import ops
from steep.cli import main
from steep.cli._common import _confirm, _echo_json, _fail, console
from steep.cli._ops import _progress, _run, _when


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _job_dict(job: ops.JobInfo) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(job)
    data.pop("envelope")
    return data


def _locate(job_id: str, queue: str | None) -> str:
    """The queue holding `job_id` (ids are unique across queues)."""
    if queue:
        return queue
    from steep.connection import get_client, get_keys

    names = ops.queue_names()
    keys = get_keys()
    pipe = get_client().pipeline(transaction=False)
    for name in names:
        pipe.hexists(keys.queue(name).jobs, job_id)
        pipe.exists(keys.queue(name).result(job_id))
    found = pipe.execute()
    for i, name in enumerate(names):
        if found[2 * i] or found[2 * i + 1]:
            return name
    _fail(f"no job {job_id} in any queue")


def _jobs_table(rows: list[ops.JobInfo], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("id", "queue", "state", "job", "args", "when", "attempt", "error"):
        table.add_column(col, overflow="fold" if col == "id" else "ellipsis")
    for j in rows:
        when = j.due_at or j.died_at or j.started_at or j.enqueued_at
        error = j.error or (j.result or {}).get("error")
        table.add_row(
            j.id,
            j.queue,
            j.state,
            j.name or "-",
            _short({"args": j.args, "kwargs": j.kwargs} if j.kwargs else j.args),
            _when(when),
            f"{j.attempt}/{j.retries + 1}" if j.name else "-",
            f"{error['type'].rsplit('.', 1)[-1]}: {error['message']}"[:60] if error else "",
        )
    return table


@main.group()
def jobs() -> None:
    """List, show, edit, move, delete, retry and cancel jobs."""


@jobs.command("list")
@click.option("-q", "--queue", help="One queue (default: every queue).")
@click.option("-s", "--state", type=click.Choice(ops.STATES), default="queued", show_default=True)
@click.option("--name", help="Job name contains this.")
@click.option("--text", help="Arguments (as JSON) contain this.")
@click.option("--tag", help="The envelope's tags include this.")
@click.option("--error", help="Last error's type or message contains this.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--cursor", help="Continue from a previous page (one queue only).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def jobs_list(
    queue: str | None,
    state: str,
    name: str | None,
    text: str | None,
    tag: str | None,
    error: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List jobs in one state, newest page first for dead, run order for queued."""
    if cursor and not queue:
        _fail("--cursor needs --queue")
    flt = ops.Filter(name=name, text=text, tag=tag, error=error)
    rows: list[ops.JobInfo] = []
    cursors: dict[str, str | None] = {}
    for qname in [queue] if queue else ops.queue_names():
        page = ops.list_jobs(qname, state, cursor=cursor, limit=limit, filter=flt)
        rows.extend(page.jobs)
        cursors[qname] = page.cursor
    if as_json:
        _echo_json({"jobs": [_job_dict(j) for j in rows], "cursors": cursors})
        return
    console.print(_jobs_table(rows, f"{state} jobs"))
    more = {q: c for q, c in cursors.items() if c}
    for qname, c in more.items():
        console.print(f"more in {qname}: --queue {qname} --cursor {c}", highlight=False)


@jobs.command("show")
@click.argument("job_id")
@click.option("-q", "--queue", help="The job's queue (found by id when omitted).")
@click.option("--json", "as_json", is_flag=True)
def jobs_show(job_id: str, queue: str | None, as_json: bool) -> None:
    """Everything about one job: arguments, options, attempts, error and traceback."""
    info = ops.get_job(_locate(job_id, queue), job_id)
    if info is None:
        _fail(f"no job {job_id}")
    if as_json:
        _echo_json(_job_dict(info))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for label, value in (
        ("id", info.id),
        ("job", info.name or "-"),
        ("queue", info.queue),
        ("state", info.state),
        ("attempt", f"{info.attempt} of {info.retries + 1}"),
        ("enqueued", _when(info.enqueued_at)),
        ("due", _when(info.due_at) if info.due_at else None),
        ("died", _when(info.died_at) if info.died_at else None),
        ("worker", info.worker),
        ("started", _when(info.started_at) if info.started_at else None),
        ("timeout", f"{info.timeout} s" if info.timeout else None),
        ("tags", ", ".join(info.tags) if info.tags else None),
        ("progress", _progress(info.progress) if info.progress else None),
        ("cursor", _cursor(info.cursor) if info.cursor else None),
    ):
        if value is not None:
            table.add_row(label, str(value))
    console.print(table, highlight=False)
    console.print_json(info.args_json)
    if info.result and "value" in info.result:
        console.print("[bold]result[/]")
        console.print_json(data=info.result["value"])
    error = info.error or (info.result or {}).get("error")
    if error:
        console.print(f"[bold red]{error.get('type')}[/]: {error.get('message')}", highlight=False)
        if error.get("worker"):
            console.print(f"attempt {error.get('attempt')} on {error['worker']}", highlight=False)
        if error.get("traceback"):
            click.echo(error["traceback"])


def _cursor(saved: dict[str, Any]) -> str:
    steps = saved.get("steps", 0)
    if saved.get("done"):
        return f"walk finished after {steps} steps"
    return f"{json.dumps(saved.get('cursor'))} after {steps} steps"


def _parse_time(at: str | None, delay: float | None, now: bool) -> float | None:
    if sum(x is not None and x is not False for x in (at, delay, now or None)) > 1:
        _fail("give one of --at, --in, --now")
    if now:
        return 0.0
    if delay is not None:
        return time.time() + delay
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            _fail(f"--at is not an ISO 8601 time: {at!r}")
        if when.tzinfo is None:
            _fail("--at needs a time zone (e.g. 2026-05-01T09:00+00:00)")
        return when.timestamp()
    return None


def _json_arg(text: str | None, option: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{option} is not valid JSON: {exc}")
    if not isinstance(value, kind):
        _fail(f"{option} must be a JSON {'array' if kind is list else 'object'}")
    return value


@jobs.command("edit")
@click.argument("job_id")
@click.option("-q", "--queue", help="The job's queue (found by id when omitted).")
@click.option("--args", "args_json", help="New positional arguments, a JSON array.")
@click.option("--kwargs", "kwargs_json", help="New keyword arguments, a JSON object.")
@click.option("--at", help="Run at this ISO 8601 time.")
@click.option("--in", "delay", type=float, help="Run in this many seconds.")
@click.option("--now", is_flag=True, help="Run now (queue a scheduled job).")
@click.option("--to", "to_queue", help="Move it to this queue.")
def jobs_edit(
    job_id: str,
    queue: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    at: str | None,
    delay: float | None,
    now: bool,
    to_queue: str | None,
) -> None:
    """Change a waiting job's arguments, run time or queue, atomically."""
    info = _run(
        ops.edit_job,
        _locate(job_id, queue),
        job_id,
        args=_json_arg(args_json, "--args", list),
        kwargs=_json_arg(kwargs_json, "--kwargs", dict),
        run_at=_parse_time(at, delay, now),
        to_queue=to_queue,
    )
    console.print(f"edited {info.id} ({info.state} on {info.queue})", highlight=False)


@jobs.command("move")
@click.argument("job_id")
@click.argument("to_queue")
@click.option("-q", "--queue", help="The job's queue (found by id when omitted).")
def jobs_move(job_id: str, to_queue: str, queue: str | None) -> None:
    """Move a waiting job to another queue."""
    _run(ops.move_job, _locate(job_id, queue), job_id, to_queue)
    console.print(f"moved {job_id} to {to_queue}", highlight=False)


def _by_queue(ids: tuple[str, ...], queue: str | None) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for job_id in ids:
        grouped.setdefault(_locate(job_id, queue), []).append(job_id)
    return grouped


@jobs.command("delete")
@click.argument("ids", nargs=-1, required=True)
@click.option("-q", "--queue", help="The jobs' queue (found by id when omitted).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def jobs_delete(ids: tuple[str, ...], queue: str | None, yes: bool) -> None:
    """Delete waiting, scheduled, retrying or dead jobs (running ones: cancel)."""
    if len(ids) > 1:
        _confirm(yes, f"Delete {len(ids)} jobs?")
    n = sum(ops.delete_jobs(q, group) for q, group in _by_queue(ids, queue).items())
    console.print(f"deleted {n} of {len(ids)}", highlight=False)


@jobs.command("retry")
@click.argument("ids", nargs=-1, required=True)
@click.option("-q", "--queue", help="The jobs' queue (found by id when omitted).")
def jobs_retry(ids: tuple[str, ...], queue: str | None) -> None:
    """Run dead, retrying or scheduled jobs now."""
    n = sum(ops.retry_jobs(q, group) for q, group in _by_queue(ids, queue).items())
    console.print(f"queued {n} of {len(ids)}", highlight=False)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("-q", "--queue", help="The job's queue (found by id when omitted).")
def jobs_cancel(job_id: str, queue: str | None) -> None:
    """Cancel a running job (it ends in the dead set as steep.Cancelled)."""
    worker_id = _run(ops.cancel_job, _locate(job_id, queue), job_id)
    console.print(f"asked worker {worker_id} to cancel {job_id}", highlight=False)


@jobs.command("interrupt")
@click.argument("job_id")
@click.option("-q", "--queue", help="The job's queue (found by id when omitted).")
def jobs_interrupt(job_id: str, queue: str | None) -> None:
    """Stop a running iterable job at its next step and park it until resumed."""
    worker_id = _run(ops.interrupt_job, _locate(job_id, queue), job_id)
    console.print(f"asked worker {worker_id} to interrupt {job_id}", highlight=False)


@jobs.command("resume")
@click.argument("job_id")
@click.option("-q", "--queue", help="The job's queue (found by id when omitted).")
def jobs_resume(job_id: str, queue: str | None) -> None:
    """Queue an interrupted iterable job again; it continues from its saved cursor."""
    _run(ops.resume_job, _locate(job_id, queue), job_id)
    console.print(f"resumed {job_id}", highlight=False)
