"""The dashboard's state-changing requests: every one a POST with a CSRF token,
refused in read-only mode, answered by a redirect back with a short message."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from steep import ops
from steep.web.security import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_ok


class Refused(Exception):
    pass


def _back(request: Request, form: Any, fallback: str, message: str) -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    target = str(form.get("next") or "")
    # only a path inside the dashboard: never an open redirect
    if not target.startswith("/") or target.startswith("//"):
        target = fallback
    path, _, query = target.partition("?")
    params = [p for p in query.split("&") if p and not p.startswith("flash=")]
    params.append(urlencode({"flash": message}))
    return RedirectResponse(f"{base}{path}?{'&'.join(params)}", status_code=303)


def action(handler: Callable[[Request, Any], str], fallback: str = "/") -> Any:
    """Wrap `handler(request, form) -> message`: checks, runs it in a thread, redirects."""

    async def endpoint(request: Request) -> Response:
        if request.app.state.config.read_only:
            return PlainTextResponse("the dashboard is read-only", status_code=403)
        form = await request.form()
        submitted = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), str(submitted or "")):
            return PlainTextResponse(
                "missing or wrong CSRF token (reload the page and try again)", status_code=403
            )
        try:
            message = await run_in_threadpool(handler, request, form)
        except (ops.OpsError, Refused) as exc:
            message = f"Not done: {exc}"
        return _back(request, form, fallback, message)

    return endpoint


def _p(request: Request, name: str) -> str:
    return str(request.path_params[name])


def pause(request: Request, form: Any) -> str:
    ops.pause(_p(request, "name"))
    return f"Paused {_p(request, 'name')}: workers take no new jobs from it."


def resume(request: Request, form: Any) -> str:
    ops.resume(_p(request, "name"))
    return f"Resumed {_p(request, 'name')}."


def clear(request: Request, form: Any) -> str:
    return f"Deleted {ops.clear(_p(request, 'name'))} waiting jobs."


def bulk(request: Request, form: Any) -> str:
    """Selected jobs (checkboxes `id` as `queue/id`), or all of a state with `all=1`."""
    what = form.get("op")
    state = str(form.get("state") or "dead")
    if form.get("all"):
        names = [str(form["queue"])] if form.get("queue") else ops.queue_names()
        if what == "retry":
            n = sum(ops.retry_all(q, state) for q in names)
            return f"Queued {n} {state} jobs again."
        if what == "delete":
            n = sum(ops.delete_all(q, state) for q in names)
            return f"Deleted {n} {state} jobs."
        raise Refused(f"unknown action {what!r}")
    grouped: dict[str, list[str]] = {}
    for value in form.getlist("id"):
        queue, _, job_id = str(value).partition("/")
        grouped.setdefault(queue, []).append(job_id)
    if not grouped:
        raise Refused("no job selected")
    if what == "retry":
        n = sum(ops.retry_jobs(q, ids) for q, ids in grouped.items())
        return f"Queued {n} jobs."
    if what == "delete":
        n = sum(ops.delete_jobs(q, ids) for q, ids in grouped.items())
        return f"Deleted {n} jobs."
    raise Refused(f"unknown action {what!r}")


def edit(request: Request, form: Any) -> str:
    queue, job_id = _p(request, "queue"), _p(request, "job_id")
    try:
        call = json.loads(str(form.get("arguments") or "{}"))
    except json.JSONDecodeError as exc:
        raise Refused(f"the arguments are not valid JSON ({exc})") from None
    if not isinstance(call, dict) or not isinstance(call.get("args", []), list):
        raise Refused('the arguments must look like {"args": [...], "kwargs": {...}}')
    if not isinstance(call.get("kwargs", {}), dict):
        raise Refused("kwargs must be a JSON object")
    run_at = _run_at(str(form.get("run_at") or ""), str(form.get("tz_offset") or "0"))
    to_queue = str(form.get("queue") or "").strip() or None
    info = ops.edit_job(
        queue,
        job_id,
        args=call.get("args", []),
        kwargs=call.get("kwargs", {}),
        run_at=run_at,
        to_queue=to_queue,
    )
    return f"Saved: the job is {info.state} on {info.queue}."


def _run_at(text: str, tz_offset: str) -> float | None:
    """A `datetime-local` value in the browser's zone (its offset in minutes, as JS gives it)."""
    if not text:
        return None
    try:
        local = datetime.fromisoformat(text)
        offset = int(tz_offset)
    except ValueError:
        raise Refused(f"not a time: {text!r}") from None
    if local.tzinfo is not None:
        return local.timestamp()
    from datetime import UTC

    return local.replace(tzinfo=UTC).timestamp() + offset * 60


def delete(request: Request, form: Any) -> str:
    n = ops.delete_jobs(_p(request, "queue"), [_p(request, "job_id")])
    if not n:
        raise Refused("the job is running or already gone")
    return "Deleted the job."


def retry(request: Request, form: Any) -> str:
    if not ops.retry_jobs(_p(request, "queue"), [_p(request, "job_id")]):
        raise Refused("the job is not dead, retrying or scheduled any more")
    return "Queued the job to run now."


def cancel(request: Request, form: Any) -> str:
    worker = ops.cancel_job(_p(request, "queue"), _p(request, "job_id"))
    return f"Asked worker {worker} to cancel the job; it ends in the dead set."


def interrupt(request: Request, form: Any) -> str:
    worker = ops.interrupt_job(_p(request, "queue"), _p(request, "job_id"))
    return f"Asked worker {worker} to stop the job at its next step; it waits until resumed."


def resume_job(request: Request, form: Any) -> str:
    ops.resume_job(_p(request, "queue"), _p(request, "job_id"))
    return "Resumed: the job continues from its saved cursor."


def quiet(request: Request, form: Any) -> str:
    ops.quiet(_p(request, "worker_id"))
    return "Asked the worker to go quiet (it finishes its jobs, takes no new ones)."


def stop(request: Request, form: Any) -> str:
    ops.stop(_p(request, "worker_id"))
    return "Asked the worker to stop."
