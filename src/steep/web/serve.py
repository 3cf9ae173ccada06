"""`steep web`: the dashboard under uvicorn, refusing to listen beyond loopback
without credentials."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import uvicorn
from starlette.types import ASGIApp

from steep.web import Extension, create_app
from steep.web.security import is_loopback


class CredentialsRequired(Exception):
    pass


def build_server(
    host: str,
    port: int,
    *,
    root_path: str = "",
    read_only: bool | None = None,
    extensions: Sequence[Extension] = (),
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
) -> uvicorn.Server:
    """uvicorn serving the dashboard (with `extensions`); `wrap` puts routes in front of
    it that are not the dashboard's (the pipeline's webhooks)."""
    app = create_app(read_only=read_only, extensions=extensions)
    if not is_loopback(host) and not app.state.config.credentials:
        raise CredentialsRequired(
            f"refusing to serve the dashboard on {host} without credentials: set "
            "web_password (HTTP basic, user web_username, default 'steep') or web_token "
            "in steep.toml, or STEEP_WEB_PASSWORD / STEEP_WEB_TOKEN, or listen on 127.0.0.1"
        )
    config = uvicorn.Config(
        wrap(app) if wrap is not None else app,
        host=host,
        port=port,
        root_path=root_path.rstrip("/"),
        log_level="warning",
        proxy_headers=False,
    )
    return uvicorn.Server(config)


def serve(
    host: str,
    port: int,
    *,
    root_path: str = "",
    read_only: bool | None = None,
    extensions: Sequence[Extension] = (),
) -> None:
    server = build_server(
        host, port, root_path=root_path, read_only=read_only, extensions=extensions
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"steep dashboard on http://{shown}:{port}{root_path.rstrip('/')}/", flush=True)
    server.run()


def serve_in_thread(host: str = "127.0.0.1", port: int = 8500) -> uvicorn.Server:
    """Start the dashboard in a daemon thread (used by `steep demo`); stop with
    `server.should_exit = True`."""
    server = build_server(host, port)
    server.config.install_signal_handlers = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.run, name="steep-web", daemon=True)
    thread.start()
    return server
