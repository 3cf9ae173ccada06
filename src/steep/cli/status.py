"""`steep status`: queues, workers and totals at a glance."""

from __future__ import annotations

import json
import time

import click

from steep.cli import main
from steep.cli._common import get_console
from steep.cli._ops import _age


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
