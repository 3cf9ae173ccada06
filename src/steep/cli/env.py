"""`steep env diff <env> <env>`: how two environments differ (docs/environments.md)."""

from __future__ import annotations

import sys

import click

from steep.cli import main
from steep.cli._common import _echo_json, get_console
from steep.settings import ENVIRONMENTS


@main.group()
def env() -> None:
    """Compare the configuration of environments."""


@env.command("diff")
@click.argument("left", type=click.Choice(ENVIRONMENTS))
@click.argument("right", type=click.Choice(ENVIRONMENTS))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env_diff(left: str, right: str, as_json: bool) -> None:
    """Differences between LEFT's and RIGHT's settings, app settings and variable names;
    exits 1 on a difference that [parity] allow does not declare."""
    from rich.table import Table

    from steep.parity import diff

    found = diff(left, right)
    unexpected = [d for d in found if not d.intended]
    if as_json:
        _echo_json(
            {
                "left": left,
                "right": right,
                "unexpected": [d.as_dict() for d in unexpected],
                "intended": [d.as_dict() for d in found if d.intended],
            }
        )
    else:
        console = get_console()
        for title, rows in (
            ("unexpected", unexpected),
            ("intended", [d for d in found if d.intended]),
        ):
            if not rows:
                continue
            table = Table(title=f"{title} differences", title_justify="left")
            for column in ("kind", "name", left, right):
                table.add_column(column)
            for d in rows:
                table.add_row(d.kind, d.name, d.left, d.right)
            console.print(table, highlight=False)
        if not found:
            console.print(f"{left} and {right} do not differ", highlight=False)
        elif not unexpected:
            console.print("every difference is declared in [parity] allow", highlight=False)
    sys.exit(1 if unexpected else 0)
