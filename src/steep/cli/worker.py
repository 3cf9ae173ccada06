"""`steep worker`, `steep server` and `steep demo`: running steep itself (worker processes,
the embedded Valkey server, and a guided first run of both)."""

from __future__ import annotations

import os
import sys

import click

from steep.cli import main
from steep.cli._common import _fail, get_console
from steep.settings import get_settings, redacted_url


@main.command()
@click.argument("modules", nargs=-1, required=True)
@click.option(
    "-q",
    "--queues",
    default=None,
    help="Queues in priority order (a,b,c) or weighted (a:5,b:2). Default from settings.",
)
@click.option(
    "-p",
    "--processes",
    type=int,
    default=None,
    help="Worker processes (default: one per CPU core).",
)
@click.option(
    "-c", "--concurrency", type=int, default=None, help="Jobs at once per process (default 10)."
)
@click.option(
    "--max-memory",
    type=float,
    default=None,
    metavar="MB",
    help="Recycle a process gracefully once its memory exceeds this.",
)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
def worker(
    modules: tuple[str, ...],
    queues: str | None,
    processes: int | None,
    concurrency: int | None,
    max_memory: float | None,
    burst: bool,
) -> None:
    """Run worker processes for the jobs defined in MODULES (e.g. app.jobs)."""
    from steep.worker import Supervisor, parse_queues

    settings = get_settings()
    sys.path.insert(0, os.getcwd())
    try:
        specs = parse_queues(queues or list(settings.queues))
    except ValueError as exc:
        _fail(str(exc))
    procs = processes or settings.processes or os.cpu_count() or 1
    conc = concurrency or settings.concurrency
    if procs < 1 or conc < 1:
        _fail("--processes and --concurrency must be at least 1")
    supervisor = Supervisor(
        list(modules), specs, procs, conc, settings, max_memory_mb=max_memory, burst=burst
    )
    try:
        code = supervisor.run()
    except ModuleNotFoundError as exc:
        _fail(
            f"cannot import {exc.name!r}: {exc} (run from your project directory, "
            "or set PYTHONPATH)"
        )
    sys.exit(code)


@main.command()
@click.option("--stop", is_flag=True, help="Stop the running embedded server.")
@click.option("--status", "show_status", is_flag=True, help="Show the embedded server.")
def server(stop: bool, show_status: bool) -> None:
    """Run the embedded Valkey server in the foreground."""
    from steep import server as embedded

    settings = get_settings()
    if settings.redis_url:
        _fail(
            f"STEEP_REDIS_URL is set ({redacted_url(settings.redis_url)}): "
            "steep uses that server, not an embedded one"
        )
    if stop:
        stopped = embedded.stop_server(settings)
        get_console().print("stopped" if stopped else "no embedded server was running")
        return
    if show_status:
        info = embedded.server_info(settings)
        get_console().print_json(data=info) if info else get_console().print("not running")
        return
    sys.exit(embedded.run_foreground(settings))


@main.command()
@click.option("--jobs", "count", type=int, default=40, help="How many sample jobs.")
@click.option("--keep-server", is_flag=True, help="Leave the embedded server running afterwards.")
def demo(count: int, keep_server: bool) -> None:
    """Start a server and a worker, run sample jobs, and show what happened."""
    from steep.cli.demo import run_demo

    sys.exit(run_demo(count, keep_server=keep_server, console=get_console()))
