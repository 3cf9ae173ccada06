"""The dashboard's Cron page: periodic entries with their next and last run, and the
pause, resume and trigger actions (through steep.ops, like every other page)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from steep import ops
from steep.web.app import env, render


def _in_zone(ts: float | None, tz: str) -> str:
    """`ts` on the entry's own wall clock, for the hover text next to the UTC time."""
    if ts is None:
        return ""
    from datetime import datetime

    from steep.features.cron import zone

    return datetime.fromtimestamp(ts, zone(tz)).isoformat(sep=" ", timespec="seconds")


env.filters["in_zone"] = _in_zone


def cron_page(request: Request) -> Response:
    return render(request, "cron.html", page="cron", entries=ops.cron_entries())


def api_cron(request: Request) -> Response:
    return JSONResponse([asdict(e) for e in ops.cron_entries()])


def _name(request: Request) -> str:
    return str(request.path_params["name"])


def pause(request: Request, form: Any) -> str:
    ops.pause_cron(_name(request))
    return f"Paused {_name(request)}: its ticks are skipped until it is resumed."


def resume(request: Request, form: Any) -> str:
    if not ops.resume_cron(_name(request)):
        return f"{_name(request)} was not paused."
    return f"Resumed {_name(request)}: it runs again from its next tick."


def trigger(request: Request, form: Any) -> str:
    job_id = ops.trigger_cron(_name(request))
    return f"Enqueued {_name(request)} now as job {job_id}."
