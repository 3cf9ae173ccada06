"""`steep web`: serve the dashboard (steep.web) from the command line."""

from __future__ import annotations

import click

from steep.cli import main
from steep.cli._common import _fail


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8500, show_default=True)
@click.option("--root-path", default="", help="Path prefix set by a reverse proxy (e.g. /steep).")
@click.option("--read-only", is_flag=True, default=None, help="Show everything, change nothing.")
def web(host: str, port: int, root_path: str, read_only: bool | None) -> None:
    """Serve the dashboard. Beyond loopback it needs STEEP_WEB_PASSWORD or STEEP_WEB_TOKEN."""
    from steep.settings import get_settings
    from steep.web.serve import CredentialsRequired, serve

    extensions = []
    if (get_settings().pipeline or {}).get("projects"):
        # a CI server's dashboard shows its pipelines too
        from steep.pipeline.web import extension

        extensions.append(extension())
    try:
        serve(host, port, root_path=root_path, read_only=read_only, extensions=extensions)
    except CredentialsRequired as exc:
        _fail(str(exc))
