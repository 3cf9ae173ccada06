"""FastAPI and Starlette integration: a lifespan that configures steep and closes its async
Redis client, and the dashboard mounted in the app.

    from steep.contrib.fastapi import mount_dashboard, steep_lifespan

    app = FastAPI(lifespan=steep_lifespan(queues=["default", "mail"]))
    mount_dashboard(app, "/steep", password=os.environ["STEEP_WEB_PASSWORD"])

    @app.post("/reports")
    async def make_report():
        job = await build_report.aenqueue(42)   # one non-blocking round trip
        return {"job": job.id}

Everything here works with a plain Starlette app too. See docs/integrations.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from steep.connection import close_async_client
from steep.settings import configure

__all__ = ["mount_dashboard", "steep_lifespan"]


def steep_lifespan(**settings: Any) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan for `FastAPI(lifespan=...)` or `Starlette(lifespan=...)`.

    At startup it applies `settings` (steep settings, on top of steep.toml and
    STEEP_* variables); at shutdown it closes the event loop's async Redis client,
    so the server stops without "unclosed connection" warnings. Inside your own
    lifespan: `async with steep_lifespan()(app): yield`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if settings:
            configure(**settings)
        try:
            yield
        finally:
            await close_async_client()

    return lifespan


def mount_dashboard(app: Any, path: str = "/steep", **options: Any) -> Any:
    """Mount steep's dashboard at `path` of a FastAPI or Starlette app; returns the dashboard.

    `options` go to `steep.web.create_app` (username, password, token, read_only,
    allow_anonymous). Without credentials only loopback clients are served.
    """
    from steep.web import create_app

    dashboard = create_app(**options)
    app.mount(path.rstrip("/"), dashboard, name="steep")
    return dashboard
