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
@click.option(
    "--project",
    help="The pipeline project whose deploys to compare too (default: the only one configured).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env_diff(left: str, right: str, project: str | None, as_json: bool) -> None:
    """Differences between LEFT's and RIGHT's settings, app settings and variable names;
    exits 1 on a difference that [parity] allow does not declare. When the pipeline
    knows the environments, what runs in each too (commit, tree, pinned packages):
    shown, never counted as unexpected (staging runs ahead of production by design)."""
    from rich.table import Table

    from steep.parity import diff

    found = diff(left, right)
    unexpected = [d for d in found if not d.intended]
    deployed = _deployed(project, left, right)
    if as_json:
        _echo_json(
            {
                "left": left,
                "right": right,
                "unexpected": [d.as_dict() for d in unexpected],
                "intended": [d.as_dict() for d in found if d.intended],
                "deployed": deployed,
            }
        )
    else:
        console = get_console()
        if deployed:
            table = Table(title=f"what runs ({project_name(project)})", title_justify="left")
            for column in ("kind", "name", left, right):
                table.add_column(column)
            for row in deployed:
                table.add_row(row["kind"], row["name"], row["left"], row["right"])
            console.print(table, highlight=False)
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


def project_name(project: str | None) -> str | None:
    """The pipeline project meant: the one named, or the only one configured."""
    if project is not None:
        return project
    from steep.settings import get_settings

    projects = (get_settings().pipeline or {}).get("projects") or {}
    return next(iter(projects)) if isinstance(projects, dict) and len(projects) == 1 else None


def _deployed(project: str | None, left: str, right: str) -> list[dict[str, str]]:
    name = project_name(project)
    if name is None:
        return []
    from steep.cli._common import _fail
    from steep.pipeline import deploys

    try:
        return deploys.deployed_differences(name, left, right)
    except Exception as exc:
        _fail(f"cannot read the deploys of {name}: {exc}")
        return []
