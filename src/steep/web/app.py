"""The dashboard's pages and JSON API: reads only, through steep.ops.

Every handler is a plain function, run in Starlette's thread pool, because
the operations layer uses the sync Redis client.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from steep import ops
from steep.ops.humanize import duration
from steep.web.security import CSRF_COOKIE, new_csrf_token

HERE = Path(__file__).parent
PAGE_SIZE = 25
NAV = (
    ("overview", "", "Overview"),
    ("queues", "/queues", "Queues"),
    ("workers", "/workers", "Workers"),
    ("scheduled", "/scheduled", "Scheduled"),
    ("retrying", "/retries", "Retries"),
    ("dead", "/dead", "Dead"),
    ("batches", "/batches", "Batches"),
    ("cron", "/cron", "Cron"),
    ("limits", "/limits", "Limits"),
    ("metrics", "/stats", "Metrics"),
)
STATE_PAGES = {"scheduled": "scheduled", "retries": "retrying", "dead": "dead"}


def _relative(ts: float | None) -> str:
    if ts is None:
        return "-"
    delta = ts - time.time()
    seconds = abs(delta)
    if seconds < 45:
        text = f"{seconds:.0f} s"
    elif seconds < 5400:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 129600:
        text = f"{seconds / 3600:.0f} h"
    else:
        text = f"{seconds / 86400:.0f} d"
    return f"in {text}" if delta > 0 else f"{text} ago"


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _ms(value: float | None) -> str:
    return "-" if value is None else duration(value / 1000)


def _short_args(job: ops.JobInfo, width: int = 80) -> str:
    value: Any = job.args if not job.kwargs else {"args": job.args, **job.kwargs}
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _bytes(n: int) -> str:
    return f"{n / 1048576:.0f} MiB"


_loaders: list[Any] = [FileSystemLoader(HERE / "templates")]
env = Environment(
    loader=ChoiceLoader(_loaders),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(
    relative=_relative, iso=_iso, duration=duration, ms=_ms, short_args=_short_args, mib=_bytes
)


def add_templates(directory: Path) -> None:
    """Let pages of a dashboard extension (steep.web.extension) use their own templates."""
    if not any(getattr(loader, "searchpath", None) == [str(directory)] for loader in _loaders):
        _loaders.append(FileSystemLoader(directory))


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    config = request.app.state.config
    token = request.cookies.get(CSRF_COOKIE) or request.state.__dict__.get("csrf")
    fresh = token is None
    if token is None:
        token = new_csrf_token()
    base = request.scope.get("root_path", "").rstrip("/")
    html = env.get_template(template).render(
        request=request,
        base=base,
        csrf=token,
        read_only=config.read_only,
        nav=getattr(request.app.state, "nav", NAV),
        flash=request.query_params.get("flash", ""),
        now=time.time(),
        **context,
    )
    response = HTMLResponse(html)
    if fresh:
        response.set_cookie(CSRF_COOKIE, token, path=base or "/", httponly=True, samesite="strict")
    return response


def _partial(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# -- pages -----------------------------------------------------------------------------


def overview(request: Request) -> Response:
    qs = ops.queues()
    busiest = sorted(qs, key=lambda q: (-q.size, -(q.oldest_age or 0)))[:8]
    panels = [(p.template, p.context()) for p in getattr(request.app.state, "panels", ())]
    return render(
        request,
        "overview.html",
        page="overview",
        totals=_totals(qs),
        busiest=busiest,
        history=ops.history(30),
        panels=panels,
    )


def _totals(qs: list[ops.QueueInfo]) -> dict[str, int]:
    ws = ops.workers()
    running = sum(len(w.running) for w in ws)
    return {**ops.totals(qs), "running": running, "workers": len(ws)}


def counters(request: Request) -> Response:
    return render(request, "_counters.html", totals=_totals(ops.queues()))


def queues_page(request: Request) -> Response:
    return render(request, "queues.html", page="queues", queues=ops.queues())


def queue_page(request: Request) -> Response:
    name = request.path_params["name"]
    state = request.query_params.get("state", "queued")
    if state not in ops.STATES:
        state = "queued"
    listing = _listing(request, state, [name])
    return render(
        request,
        "queue.html",
        page="queues",
        queue=ops.queue(name),
        state=state,
        states=ops.STATES,
        **listing,
    )


def state_page(request: Request) -> Response:
    kind = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    state = STATE_PAGES[kind]
    names = ops.queue_names()
    chosen = request.query_params.get("queue") or ""
    listing = _listing(request, state, [chosen] if chosen in names else names)
    return render(
        request, "state.html", page=state, state=state, queue_names=names, chosen=chosen, **listing
    )


def _listing(request: Request, state: str, names: list[str]) -> dict[str, Any]:
    """One page of jobs over one or more queues, with a cursor per queue."""
    q = request.query_params
    flt = ops.Filter(
        name=q.get("name") or None,
        text=q.get("text") or None,
        tag=q.get("tag") or None,
        error=q.get("error") or None,
    )
    cursors = _decode_cursor(q.get("cursor"))
    rows: list[ops.JobInfo] = []
    after: dict[str, str | None] = {}
    for name in names:
        if cursors and cursors.get(name, "") is None:
            continue  # that queue was exhausted on an earlier page
        page = ops.list_jobs(
            name, state, cursor=(cursors or {}).get(name), limit=PAGE_SIZE, filter=flt
        )
        rows.extend(page.jobs)
        after[name] = page.cursor
    if len(names) > 1 and state == "dead":
        rows.sort(key=lambda j: -(j.died_at or 0))
    elif len(names) > 1 and state in ("scheduled", "retrying"):
        rows.sort(key=lambda j: j.due_at or 0)
    more = any(c is not None for c in after.values())
    return {
        "jobs": rows,
        "filter": flt,
        "next_cursor": _encode_cursor(after) if more else None,
        "first_page": not cursors,
    }


def _encode_cursor(cursors: dict[str, str | None]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursors).encode()).decode()


def _decode_cursor(text: str | None) -> dict[str, str | None] | None:
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def job_page(request: Request) -> Response:
    queue, job_id = request.path_params["queue"], request.path_params["job_id"]
    job = ops.get_job(queue, job_id)
    if job is None:
        return render(request, "missing.html", page="", queue=queue, job_id=job_id)
    return render(
        request,
        "job.html",
        page="",
        job=job,
        queue_names=ops.queue_names(),
        result_json=json.dumps(job.result.get("value"), indent=2, ensure_ascii=False)
        if job.result and "value" in job.result
        else None,
        extra_json=json.dumps(job.extra, indent=2, ensure_ascii=False) if job.extra else None,
    )


def batches_page(request: Request) -> Response:
    state = request.query_params.get("state") or None
    if state not in (None, "open", "running", "succeeded", "failed"):
        state = None
    rows = ops.batches(100, state=state)
    return render(request, "batches.html", page="batches", batches=rows, state=state or "")


def batch_page(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    b = ops.get_batch(batch_id)
    if b is None:
        return render(request, "batch.html", page="batches", b=None, batch_id=batch_id)
    results = ops.batch_results(batch_id) if b.kind in ("group", "chain") else None
    return render(
        request,
        "batch.html",
        page="batches",
        b=b,
        dead_members=ops.locate_jobs(b.failed_ids[:100]),
        results_json=json.dumps(results, indent=2, ensure_ascii=False) if results else None,
    )


def api_batch(request: Request) -> Response:
    b = ops.get_batch(request.path_params["batch_id"])
    if b is None:
        return JSONResponse({"error": "no such batch"}, status_code=404)
    return JSONResponse({**asdict(b), "done": b.done, "percent": round(b.percent, 1)})


def workers_page(request: Request) -> Response:
    ws = ops.workers()
    # the live fragment renders complete in the page itself (no JavaScript needed)
    rows = ops.running_jobs(infos=ws)
    return render(request, "workers.html", page="workers", workers=ws, rows=rows)


def limits_page(request: Request) -> Response:
    return render(request, "limits.html", page="limits", limits=ops.limits())


def api_limits(request: Request) -> Response:
    return JSONResponse([asdict(info) for info in ops.limits()])


def running_partial(request: Request) -> Response:
    return render(request, "_running.html", rows=ops.running_jobs())


def stats_page(request: Request) -> Response:
    minutes = min(max(int(request.query_params.get("minutes", "60") or 60), 5), 2880)
    metrics = ops.job_metrics(minutes)
    return render(request, "stats.html", page="metrics", metrics=metrics, minutes=minutes)


# -- JSON API --------------------------------------------------------------------------


def api_status(request: Request) -> Response:
    return JSONResponse(ops.status())


def api_history(request: Request) -> Response:
    days = min(int(request.query_params.get("days", "30")), 90)
    return JSONResponse(ops.history(days))


def api_minutes(request: Request) -> Response:
    """Processed and failed per minute over every job name (the overview's live chart)."""
    minutes = min(int(request.query_params.get("minutes", "60")), 2880)
    metrics = ops.job_metrics(minutes)
    now = time.time() // 60 * 60
    stamps = [now - 60 * i for i in range(minutes - 1, -1, -1)]
    done = [0] * minutes
    failed = [0] * minutes
    per_job = {}
    for m in metrics:
        for i, (_, count, fails) in enumerate(m.series):
            done[i] += count
            failed[i] += fails
        per_job[m.name] = {
            "count": [c for _, c, _ in m.series],
            "failed": [f for *_, f in m.series],
        }
    return JSONResponse({"t": stamps, "processed": done, "failed": failed, "jobs": per_job})


def api_jobs(request: Request) -> Response:
    queue, state = request.path_params["queue"], request.path_params["state"]
    q = request.query_params
    try:
        page = ops.list_jobs(
            queue,
            state,
            cursor=q.get("cursor") or None,
            limit=min(int(q.get("limit", "50")), 500),
            filter=ops.Filter(q.get("name"), q.get("text"), q.get("tag"), q.get("error")),
        )
    except ops.OpsError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"jobs": [_job_json(j) for j in page.jobs], "cursor": page.cursor})


def api_job(request: Request) -> Response:
    job = ops.get_job(request.path_params["queue"], request.path_params["job_id"])
    if job is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse(_job_json(job))


def _job_json(job: ops.JobInfo) -> dict[str, Any]:
    data = asdict(job)
    data.pop("envelope")
    return data
