"""The steep dashboard: a Starlette app to mount in any ASGI application.

    from steep.web import create_app
    app.mount("/steep", create_app(username="ops", password="..."))

See docs/dashboard.md for running it (`steep web`), security and Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from steep.settings import get_settings
from steep.web import actions, app, cron, prometheus
from steep.web.extension import Extension, Panel
from steep.web.security import Credentials, Guard

__all__ = ["DashboardConfig", "Extension", "Panel", "create_app"]


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    credentials: Credentials
    read_only: bool = False
    allow_anonymous: bool = False


def create_app(
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    read_only: bool | None = None,
    allow_anonymous: bool = False,
    extensions: Sequence[Extension] = (),
) -> Starlette:
    """The dashboard as an ASGI app.

    Credentials and read-only mode default to the settings `web_username` (default
    `steep`), `web_password`, `web_token` and `web_read_only` (steep.toml, or
    STEEP_WEB_USERNAME, STEEP_WEB_PASSWORD, STEEP_WEB_TOKEN, STEEP_WEB_READ_ONLY).
    Without credentials only loopback clients are served, unless
    `allow_anonymous=True` (the host application authenticates its users itself).
    `extensions` add pages (steep.web.extension: the delivery pipeline's, for one).
    """
    settings = get_settings()
    credentials = Credentials(
        username=username or settings.web_username,
        password=(password if password is not None else settings.web_password) or None,
        token=(token if token is not None else settings.web_token) or None,
    )
    config = DashboardConfig(
        credentials=credentials,
        read_only=settings.web_read_only if read_only is None else read_only,
        allow_anonymous=allow_anonymous,
    )
    post: dict[str, Any] = {"methods": ["POST"]}
    routes: list[BaseRoute] = [
        Route("/", app.overview),
        Route("/_/counters", app.counters),
        Route("/_/running", app.running_partial),
        Route("/queues", app.queues_page),
        Route("/queues/{name}", app.queue_page),
        Route("/queues/{name}/pause", actions.action(actions.pause, "/queues"), **post),
        Route("/queues/{name}/resume", actions.action(actions.resume, "/queues"), **post),
        Route("/queues/{name}/clear", actions.action(actions.clear, "/queues"), **post),
        Route("/bulk", actions.action(actions.bulk), **post),
        Route("/scheduled", app.state_page),
        Route("/retries", app.state_page),
        Route("/dead", app.state_page),
        Route("/jobs/{queue}/{job_id}", app.job_page),
        Route("/jobs/{queue}/{job_id}/edit", actions.action(actions.edit), **post),
        Route("/jobs/{queue}/{job_id}/delete", actions.action(actions.delete), **post),
        Route("/jobs/{queue}/{job_id}/retry", actions.action(actions.retry), **post),
        Route("/jobs/{queue}/{job_id}/cancel", actions.action(actions.cancel), **post),
        Route("/jobs/{queue}/{job_id}/interrupt", actions.action(actions.interrupt), **post),
        Route("/jobs/{queue}/{job_id}/resume", actions.action(actions.resume_job), **post),
        Route("/batches", app.batches_page),
        Route("/batches/{batch_id}", app.batch_page),
        Route("/workers", app.workers_page),
        Route("/workers/{worker_id}/quiet", actions.action(actions.quiet, "/workers"), **post),
        Route("/workers/{worker_id}/stop", actions.action(actions.stop, "/workers"), **post),
        Route("/cron", cron.cron_page),
        Route("/cron/{name}/pause", actions.action(cron.pause, "/cron"), **post),
        Route("/cron/{name}/resume", actions.action(cron.resume, "/cron"), **post),
        Route("/cron/{name}/trigger", actions.action(cron.trigger, "/cron"), **post),
        Route("/limits", app.limits_page),
        Route("/stats", app.stats_page),
        Route("/metrics", prometheus.metrics),
        Route("/api/status", app.api_status),
        Route("/api/history", app.api_history),
        Route("/api/limits", app.api_limits),
        Route("/api/minutes", app.api_minutes),
        Route("/api/cron", cron.api_cron),
        Route("/api/jobs/{queue}/{state}", app.api_jobs),
        Route("/api/job/{queue}/{job_id}", app.api_job),
        Route("/api/batch/{batch_id}", app.api_batch),
    ]
    for extension in extensions:
        routes.extend(extension.routes)
        if extension.templates is not None:
            app.add_templates(extension.templates)
    routes.append(Mount("/static", StaticFiles(directory=app.HERE / "static"), name="static"))
    web = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, credentials=credentials, allow_anonymous=allow_anonymous)],
    )
    web.state.config = config
    web.state.nav = (*app.NAV, *(entry for e in extensions for entry in e.nav))
    web.state.panels = tuple(panel for e in extensions for panel in e.panels)
    return web
