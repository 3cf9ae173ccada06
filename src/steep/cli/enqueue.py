"""`steep enqueue`: put one job on its queue from the command line, optionally waiting for
its result."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from steep.cli import main
from steep.cli._common import _fail, get_console


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
