"""`steep jobs|queues|workers|dead|batches|stats|limits`: the operations layer on the command line.

Tables for people, `--json` for scripts. Bulk actions that destroy or move many
jobs ask first unless `--yes`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from steep import ops
from steep.cli import _age, _fail, console, main


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    delta = ts - time.time()
    return f"in {_age(delta)}" if delta > 0 else f"{_age(-delta)} ago"


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


def _confirm(yes: bool, message: str) -> None:
    if not yes and not click.confirm(message, default=False):
        _fail("cancelled")


def _run(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except ops.OpsError as exc:
        _fail(str(exc))


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


# -- jobs --------------------------------------------------------------------------------


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


def _progress(report: dict[str, Any] | None) -> str:
    if not report:
        return "-"
    text = f"{report.get('fraction', 0) * 100:.0f}%"
    return f"{text} {report['message']}" if report.get("message") else text


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


# -- queues ------------------------------------------------------------------------------


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


# -- workers -----------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """List worker processes and what they run; quiet or stop one."""
    if ctx.invoked_subcommand:
        return
    from dataclasses import asdict

    infos = ops.workers()
    if as_json:
        _echo_json([asdict(w) for w in infos])
        return
    table = Table(title="Workers", title_justify="left")
    for col in ("worker", "host", "pid", "queues", "busy", "processed", "failed", "memory", "beat"):
        table.add_column(col, justify="left" if col in ("worker", "host", "queues") else "right")
    for w in infos:
        table.add_row(
            w.id + (" (quiet)" if w.quiet else ""),
            w.host,
            str(w.pid),
            ",".join(w.queues),
            f"{w.busy}/{w.concurrency}",
            str(w.processed),
            str(w.failed),
            f"{w.rss / 1048576:.0f} MiB",
            _when(w.last_beat),
        )
    console.print(table)
    running = [(w, r) for w in infos for r in w.running]
    if running:
        jobs_t = Table(title="Running now", title_justify="left")
        for col in ("job id", "job", "queue", "worker", "running for", "progress"):
            jobs_t.add_column(col)
        for w, r in running:
            jobs_t.add_row(
                r["id"], r["name"], r["queue"], w.id, _age(r["runtime"]), _progress(r["progress"])
            )
        console.print(jobs_t)


@workers.command("quiet")
@click.argument("worker_id")
def workers_quiet(worker_id: str) -> None:
    """The worker finishes its jobs and takes no new ones."""
    _run(ops.quiet, worker_id)
    console.print(f"asked {worker_id} to go quiet", highlight=False)


@workers.command("stop")
@click.argument("worker_id")
def workers_stop(worker_id: str) -> None:
    """The worker shuts down gracefully."""
    _run(ops.stop, worker_id)
    console.print(f"asked {worker_id} to stop", highlight=False)


# -- dead --------------------------------------------------------------------------------


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


# -- batches -----------------------------------------------------------------------------


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


# -- stats -------------------------------------------------------------------------------


@main.command()
@click.option("--days", type=int, default=7, show_default=True, help="Daily totals shown.")
@click.option("--minutes", type=int, default=60, show_default=True, help="Per-job window.")
@click.option("--json", "as_json", is_flag=True)
def stats(days: int, minutes: int, as_json: bool) -> None:
    """Processed and failed per day, and per job name over the last minutes."""
    daily = ops.history(days)
    metrics = ops.job_metrics(minutes)
    if as_json:
        _echo_json({"days": daily, "jobs": [m.as_dict() for m in metrics]})
        return
    table = Table(title="Per day (UTC)", title_justify="left")
    for col in ("day", "processed", "failed"):
        table.add_column(col, justify="left" if col == "day" else "right")
    for d in daily:
        table.add_row(d["day"], str(d["processed"]), str(d["failed"]))
    console.print(table)
    table = Table(title=f"Per job, last {minutes} min", title_justify="left")
    for col in ("job", "runs", "failed", "mean", "p50", "p95"):
        table.add_column(col, justify="left" if col == "job" else "right")

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"

    for m in metrics:
        table.add_row(
            m.name, str(m.count), str(m.failed), ms(m.mean_ms), ms(m.p50_ms), ms(m.p95_ms)
        )
    console.print(table)


# -- limits ------------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def limits(as_json: bool) -> None:
    """Rate limiters: their limit, how much is in use now, how often jobs were deferred."""
    from dataclasses import asdict

    infos = ops.limits()
    if as_json:
        _echo_json([asdict(info) for info in infos])
        return
    table = Table(title="Limits", title_justify="left")
    for col in ("limiter", "kind", "limit", "in use", "admitted", "deferred", "holders"):
        table.add_column(col, justify="left" if col in ("limiter", "kind", "holders") else "right")
    for info in infos:
        per = f" per {info.period:g} s" if info.kind == "window" else ""
        lease = f" (lease {info.period:g} s)" if info.kind == "concurrency" else ""
        table.add_row(
            info.name,
            info.kind + lease,
            f"{info.limit}{per}",
            str(info.in_use),
            str(info.admitted),
            str(info.deferred),
            ", ".join(info.holders[:5]) + (" ..." if len(info.holders) > 5 else ""),
        )
    if not infos:
        console.print("no limiter has been used yet", highlight=False)
        return
    console.print(table)


# -- web ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8500, show_default=True)
@click.option("--root-path", default="", help="Path prefix set by a reverse proxy (e.g. /steep).")
@click.option("--read-only", is_flag=True, default=None, help="Show everything, change nothing.")
def web(host: str, port: int, root_path: str, read_only: bool | None) -> None:
    """Serve the dashboard. Beyond loopback it needs STEEP_WEB_PASSWORD or STEEP_WEB_TOKEN."""
    from steep.web.serve import CredentialsRequired, serve

    try:
        serve(host, port, root_path=root_path, read_only=read_only)
    except CredentialsRequired as exc:
        _fail(str(exc))
