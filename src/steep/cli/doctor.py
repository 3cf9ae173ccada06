"""`steep doctor`: why jobs do not run, and what to change (steep.ops.doctor's checks)."""

from __future__ import annotations

import sys

import click

from steep.cli import main

_MARK = {"ok": "ok     ", "warning": "warning", "problem": "PROBLEM"}


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check the server, the workers and the queues; exit 1 on a problem."""
    import redis

    from steep.ops import doctor as checks

    try:
        findings = checks.diagnose()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        findings = [
            checks.Finding(
                "server",
                "problem",
                f"cannot reach the server: {exc}",
                "check STEEP_REDIS_URL (or redis_url in steep.toml), and that the server runs",
            )
        ]
    if as_json:
        click.echo(checks.dumps(findings))
    else:
        for f in findings:
            click.echo(f"{_MARK[f.level]}  {f.check}: {f.message}")
            if f.fix and f.level != "ok":
                click.echo(f"           fix: {f.fix}")
        problems = sum(1 for f in findings if f.level == "problem")
        click.echo(f"\n{problems} problem(s)" if problems else "\nno problem found")
    sys.exit(1 if any(f.level == "problem" for f in findings) else 0)
