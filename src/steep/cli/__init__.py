"""The `steep` command line."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn

import click

from steep.ops.humanize import duration
from steep.settings import ConfigError, configure, get_settings, redacted_url

if TYPE_CHECKING:
    from rich.console import Console

_console: Console | None = None


def get_console() -> Console:
    """The terminal output, made on first use (rich is not needed to run a worker)."""
    global _console
    if _console is None:
        from rich.console import Console

        # Piped output (scripts, CI logs) gets wide lines instead of a wrapped 80 columns.
        _console = Console(width=None if sys.stdout.isatty() else 160)
    return _console


def __getattr__(name: str) -> Any:
    if name == "console":  # `from steep.cli import console` in the command modules
        return get_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fail(message: str) -> NoReturn:
    # plain text: messages quote user input (TOML tables in brackets, JSON) verbatim
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


# Commands defined in other modules, imported only when one of them runs (or for
# --help): `steep worker` starts faster without the operations layer loaded.
_LAZY_COMMANDS = {
    "cron": "steep.cli.cron",
    **dict.fromkeys(
        ("jobs", "queues", "workers", "dead", "batches", "stats", "limits", "web"),
        "steep.cli.ops",
    ),
}


class SteepGroup(click.Group):
    """Loads the operator commands on demand, and turns configuration problems into
    one clear line instead of a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _LAZY_COMMANDS:
            importlib.import_module(_LAZY_COMMANDS[cmd_name])  # registers it on `main`
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(str(exc))


@click.group(cls=SteepGroup)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level (default from settings: info).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log lines as text, or JSON for log shippers.",
)
@click.version_option(package_name="steep")
def main(log_level: str | None, log_format: str | None) -> None:
    """steep: background jobs on Redis/Valkey that never lose work."""
    from steep.logs import setup_logging

    overrides: dict[str, Any] = {}
    if log_level:
        overrides["log_level"] = log_level.upper()
    if log_format:
        overrides["log_format"] = log_format
    settings = configure(**overrides) if overrides else get_settings()
    setup_logging(settings.log_level, settings.log_format)


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
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", default=None, help="Keyword arguments as a JSON object.")
@click.option("--queue", default=None, help="Override the job's queue.")
@click.option("--in", "delay", type=float, default=None, help="Run in this many seconds.")
@click.option(
    "--wait",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Wait for the result (enqueues with a result_ttl of one hour).",
)
def enqueue(
    name: str,
    args: tuple[str, ...],
    kwargs_json: str | None,
    queue: str | None,
    delay: float | None,
    wait: float | None,
) -> None:
    """Enqueue job NAME (e.g. app.jobs.send_report) with ARGS given as JSON values."""
    from steep.errors import JobFailed, UnknownJob
    from steep.registry import import_job

    sys.path.insert(0, os.getcwd())
    try:
        fn = import_job(name)
    except (UnknownJob, ImportError) as exc:
        _fail(str(exc))
    values = []
    for i, text in enumerate(args):
        try:
            values.append(json.loads(text))
        except json.JSONDecodeError:
            _fail(f"argument {i + 1} is not valid JSON: {text!r} (strings need quotes: '\"text\"')")
    kwargs = {}
    if kwargs_json:
        try:
            kwargs = json.loads(kwargs_json)
        except json.JSONDecodeError as exc:
            _fail(f"--kwargs is not valid JSON: {exc}")
        if not isinstance(kwargs, dict):
            _fail("--kwargs must be a JSON object")
    overrides: dict[str, Any] = {}
    if queue:
        overrides["queue"] = queue
    if wait is not None:
        overrides["result_ttl"] = 3600
    bound = fn.options(**overrides)
    try:
        handle = (
            bound.enqueue_in(delay, *values, **kwargs)
            if delay
            else bound.enqueue(*values, **kwargs)
        )
    except TypeError as exc:
        _fail(str(exc))
    get_console().print(
        f"enqueued {handle.id} ({fn.name} on queue {handle.queue})", highlight=False
    )
    if wait is not None:
        try:
            value = handle.result(timeout=wait)
        except JobFailed as exc:
            _fail(str(exc))
        except TimeoutError as exc:
            _fail(str(exc))
        get_console().print_json(data=value)


_age = duration


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Queues, workers and totals."""
    from rich.table import Table

    from steep import ops

    data = ops.status()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    q = Table(title="Queues", title_justify="left")
    for col in ("queue", "waiting", "oldest", "scheduled", "dead", "processed", "failed", ""):
        q.add_column(col, justify="left" if col in ("queue", "") else "right")
    for info in data["queues"]:
        q.add_row(
            info["name"],
            str(info["size"]),
            _age(info["oldest_age"]),
            str(info["scheduled"]),
            str(info["dead"]),
            str(info["processed"]),
            str(info["failed"]),
            "paused" if info["paused"] else "",
        )
    get_console().print(q)
    w = Table(title="Workers", title_justify="left")
    for col in ("worker", "queues", "busy", "processed", "failed", "memory", "up", "last beat"):
        w.add_column(col, justify="left" if col in ("worker", "queues") else "right")
    now = time.time()
    for info in data["workers"]:
        w.add_row(
            info["id"],
            ",".join(info["queues"]),
            f"{info['busy']}/{info['concurrency']}",
            str(info["processed"]),
            str(info["failed"]),
            f"{info['rss'] / 1048576:.0f} MiB",
            _age(now - info["started"]),
            _age(now - info["last_beat"]) + " ago",
        )
    get_console().print(w)
    t = data["totals"]
    get_console().print(
        f"processed {t['processed']}  failed {t['failed']}  queued {t['queued']}  "
        f"scheduled {t['scheduled']}  dead {t['dead']}  workers {t['workers']}  "
        f"busy {t['busy']}",
        highlight=False,
    )


@main.command()
@click.option("--jobs", "count", type=int, default=40, help="How many sample jobs.")
@click.option("--keep-server", is_flag=True, help="Leave the embedded server running afterwards.")
def demo(count: int, keep_server: bool) -> None:
    """Start a server and a worker, run sample jobs, and show what happened."""
    from steep.cli.demo import run_demo

    sys.exit(run_demo(count, keep_server=keep_server, console=get_console()))
