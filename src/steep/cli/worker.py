"""`steep worker`, `steep server` and `steep demo`: running steep itself (worker processes,
the embedded Valkey server, and a guided first run of both)."""

from __future__ import annotations

import importlib
import os
import sys

import click

from steep.cli import main
from steep.cli._common import _fail, get_console
from steep.settings import (
    FIELDS,
    Settings,
    configure,
    get_settings,
    load_settings,
    redacted_url,
)


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
    from steep.worker import PlatformNotSupported, Supervisor, check_worker_platform, parse_queues

    try:
        check_worker_platform()
    except PlatformNotSupported as exc:
        _fail(str(exc))

    settings = _settings_after_import(modules)
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
    sys.exit(supervisor.run())


def _settings_after_import(modules: tuple[str, ...]) -> Settings:
    """The worker's settings, read once the application is imported.

    Importing MODULES may configure steep (Flask's `app.config["STEEP_..."]` through
    `Steep.init_app`, Django's `settings.STEEP`, `os.environ["STEEP_..."]` set in the
    module): the supervisor must see what its worker processes will see, or it would watch
    other queues, or another server, than they work on.
    """
    from steep.logs import setup_logging

    # file and environment alone: what differs from them was configured in code (by Django's
    # settings.STEEP before this command ran, or by the modules imported below)
    before = load_settings()
    sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            _fail(
                f"cannot import {exc.name!r}: {exc} (run from your project directory, "
                "or set PYTHONPATH)"
            )
    overrides = click.get_current_context().find_root().meta.get("steep.overrides", {})
    current = get_settings()
    # File and environment read again (the modules may have set STEEP_* variables), then
    # what the modules configured in code, then the command line's flags.
    in_code = {k: getattr(current, k) for k in FIELDS if getattr(current, k) != getattr(before, k)}
    settings = configure(load_settings(), **{**in_code, **overrides})
    setup_logging(settings.log_level, settings.log_format, app=settings.log_app)
    return settings


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
