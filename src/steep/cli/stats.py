"""`steep stats` and `steep limits`: what the work measured (processed and failed per day,
run times per job) and how the rate limiters are used."""

from __future__ import annotations

import click
from rich.table import Table

from steep import ops
from steep.cli import main
from steep.cli._common import _echo_json, console


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
