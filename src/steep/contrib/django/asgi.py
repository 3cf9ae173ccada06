"""Django's ASGI application with steep's dashboard mounted beside it."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from steep.web import create_app

__all__ = ["with_dashboard"]


def with_dashboard(application: Any, path: str = "/steep", **options: Any) -> Starlette:
    """`application` (from `get_asgi_application()`) with the dashboard at `path`.

    `options` go to `steep.web.create_app` (username, password, token, read_only,
    allow_anonymous); by default credentials come from STEEP_WEB_PASSWORD and
    STEEP_WEB_TOKEN, and without any only loopback clients are served.
    """
    return Starlette(
        routes=[Mount(path.rstrip("/"), create_app(**options)), Mount("", application)]
    )
