"""`steep data copy <from> <to>` and `steep data check <env>`: production data in staging,
scrubbed (docs/data.md)."""

from __future__ import annotations

import sys

import click

from steep.cli import main
from steep.cli._common import _echo_json, _fail, get_console


def _line(exc: Exception) -> str:
    # drivers' messages run over several lines (DETAIL, HINT): one line, as every error
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


@main.group()
def data() -> None:
    """Copy a database between environments, scrubbed; check a scrubbed one."""


@data.command("copy")
@click.argument("from_env")
@click.argument("to_env")
@click.option("--dry-run", is_flag=True, help="Print the plan (tables, rows, rules) only.")
@click.option("--yes", is_flag=True, help="Do not ask before replacing the target database.")
def data_copy(from_env: str, to_env: str, dry_run: bool, yes: bool) -> None:
    """Copy FROM_ENV's database over TO_ENV's, scrubbed by the [data] rules."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from steep.data.copy import CopyError, ScrubError, copy

    console = get_console()
    try:
        plan_only = copy(from_env, to_env, dry_run=True)
    except (CopyError, ScrubError) as exc:
        _fail(_line(exc))
    console.print(f"plan: {from_env} -> {to_env}", highlight=False)
    for line in plan_only.plan.lines():
        console.print(f"  {line}", highlight=False)
    if dry_run:
        console.print("dry run: nothing was copied", highlight=False)
        return
    if not yes and not click.confirm(f"Replace the {to_env} database?", default=False):
        _fail("cancelled")
    steps = ["pg_dump", "pg_restore", "scrub", "swap"]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stdout.isatty(),
    ) as bar:
        task = bar.add_task("copying", total=len(steps) + 1)

        def progress(what: str, rows: int) -> None:
            suffix = f" ({rows:,} rows)" if rows else ""
            bar.update(task, description=f"{what}{suffix}")
            if what in steps or what == "backup":
                bar.advance(task)

        try:
            result = copy(from_env, to_env, progress=progress, plan=plan_only.plan)
        except (CopyError, ScrubError) as exc:
            text = _line(exc)
            _fail(
                text
                if "is as it was" in text or "in place" in text
                else f"{text} ({to_env} is as it was)"
            )
        bar.update(task, completed=len(steps) + 1)
    report = result.report
    assert report is not None
    for name, count in report.checked.items():
        console.print(
            f"  {name}: {count:,} distinct values scrubbed, "
            f"{report.survivors.get(name, 0)} survived",
            highlight=False,
        )
    rows = sum(report.rows.values())
    console.print(
        f"copied {from_env} -> {to_env}: {rows:,} rows scrubbed in {report.seconds:.2f} s "
        f"({report.rows_per_second:,.0f} rows/s)",
        highlight=False,
    )


@data.command("check")
@click.argument("env")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def data_check(env: str, as_json: bool) -> None:
    """Check ENV's database against the [data] rules (exit 1 on a finding)."""
    from steep.data.copy import CopyError, ScrubError, check

    try:
        plan, unscrubbed = check(env)
    except (CopyError, ScrubError) as exc:
        _fail(_line(exc))
    findings = {k: v for k, v in unscrubbed.items() if v}
    if as_json:
        _echo_json({"unscrubbed": unscrubbed, "personal_without_rule": plan.unruled_personal})
    else:
        console = get_console()
        for name, count in unscrubbed.items():
            console.print(f"{name}: {count:,} rows do not look scrubbed", highlight=False)
        for name in plan.unruled_personal:
            console.print(f"{name}: looks personal and has no rule", highlight=False)
        if not findings and not plan.unruled_personal:
            console.print(f"{env}: every scrubbed column looks scrubbed", highlight=False)
    if findings or plan.unruled_personal:
        sys.exit(1)
