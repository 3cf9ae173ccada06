"""`steep workers [quiet|stop]`: worker processes and the jobs they run now, and asking
one to go quiet or stop."""

from __future__ import annotations

import click
from rich.table import Table

from steep import ops
from steep.cli import main
from steep.cli._common import _echo_json, console
from steep.cli._ops import _age, _progress, _run, _when


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 0 if this machine runs a live worker, else 1 (a liveness probe).",
)
@click.option("--host", default=None, help="With --check: the machine to look at.")
@click.option("--min", "at_least", type=int, default=1, show_default=True, help="With --check.")
@click.pass_context
def workers(
    ctx: click.Context, as_json: bool, check: bool, host: str | None, at_least: int
) -> None:
    """List worker processes and what they run; quiet or stop one."""
    if ctx.invoked_subcommand:
        return
    if check:
        _check(host, at_least)
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
            w.id
            + (" (quiet)" if w.quiet else "")
            + (f"\n{w.restarts_text}" if w.restarts_text else ""),
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


def _check(host: str | None, at_least: int) -> None:
    """A liveness probe: at least `at_least` worker processes of `host` (this machine) whose
    heartbeat is younger than heartbeat_timeout. One line, exit 0 or 1."""
    import socket
    import sys
    import time

    from steep.settings import get_settings

    host = host or socket.gethostname()
    timeout = get_settings().heartbeat_timeout
    try:
        mine = [w for w in ops.workers() if w.host == host]
    except Exception as exc:  # a probe answers, whatever went wrong
        click.echo(f"unhealthy: cannot read the workers from the server: {exc}")
        sys.exit(1)
    # the heartbeat was written by this machine's clock, so compare with it
    live = [w for w in mine if time.time() - w.last_beat <= timeout]
    if len(live) >= at_least:
        click.echo(f"ok: {len(live)} live worker processes on {host}")
        sys.exit(0)
    last = max((w.last_beat for w in mine), default=None)
    seen = f"; the last heartbeat was {time.time() - last:.0f} s ago" if last else ""
    click.echo(
        f"unhealthy: {len(live)} live worker processes on {host}, expected at least "
        f"{at_least} (a heartbeat younger than {timeout:g} s){seen}"
    )
    sys.exit(1)


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
