"""The pipeline's pages in the dashboard (a steep.web extension): Pipelines (every
project with its branches and the state of their last run), a project's runs and
webhook deliveries, a run (stages, steps, durations, the live log, cancel and re-run),
the latest runs on the overview, and the same as JSON under /api/pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from steep.pipeline import config as pipeline_config
from steep.pipeline import environments_view, logs, store, trigger
from steep.pipeline.records import Run
from steep.pipeline.web_environments import routes as environment_routes
from steep.web.actions import Refused, action
from steep.web.app import render
from steep.web.extension import Extension, Panel

HERE = Path(__file__).parent
LOG_PAGE = 2000  # lines per request of the live log


def _projects() -> list[dict[str, Any]]:
    config = pipeline_config.load()
    rows = []
    for project in config.projects.values():
        lanes = store.latest_by_lane(project.name)
        rows.append(
            {
                "project": project,
                "webhooks": project.forge == "none" or project.webhook_secret() is not None,
                "lanes": lanes,
            }
        )
    return rows


def projects_page(request: Request) -> Response:
    return render(request, "pipeline_projects.html", page="pipeline", projects=_projects())


def project_page(request: Request) -> Response:
    name = request.path_params["name"]
    config = pipeline_config.load()
    project = config.projects.get(name)
    if project is None:
        return render(request, "pipeline_missing.html", page="pipeline", what=f"project {name}")
    raw = store.client().lrange(store.keys().deliveries(name), 0, -1)
    deliveries = [json.loads(entry) for entry in raw]  # type: ignore[union-attr]
    branch = request.query_params.get("branch") or None
    return render(
        request,
        "pipeline_project.html",
        page="pipeline",
        project=project,
        branch=branch,
        lanes=store.latest_by_lane(name),
        runs=store.list_runs(name, limit=50, branch=branch),
        deliveries=deliveries,
    )


def _run_context(run: Run) -> dict[str, Any]:
    config = pipeline_config.load()
    stages = []
    for names in run.stages or [[s.name for s in run.steps]]:
        steps = [s for n in names if (s := run.step(n)) is not None]
        stages.append({"name": steps[0].stage if steps else "-", "steps": steps})
    return {
        "run": run,
        "stages": stages,
        "shown_repo": config.projects[run.meta.project].shown_repo
        if run.meta.project in config.projects
        else "-",
        "deploys": environments_view.deploys_of_run(
            run.meta.project, [s.name for s in run.steps if s.stage == "deploy"], run.id
        ),
    }


def run_page(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    run = store.get_run(run_id)
    if run is None:
        return render(request, "pipeline_missing.html", page="pipeline", what=f"run {run_id}")
    partial = request.headers.get("hx-request") == "true"
    template = "_pipeline_steps.html" if partial else "pipeline_run.html"
    return render(request, template, page="pipeline", partial=partial, **_run_context(run))


def _latest_panel() -> dict[str, Any]:
    return {"runs": store.list_runs(limit=8)}


# -- actions (POST, CSRF-checked by steep.web.actions) ---------------------------------


def _cancel(request: Request, form: Any) -> str:
    run_id = request.path_params["run_id"]
    try:
        done = trigger.cancel_run(run_id, "cancelled from the dashboard")
    except trigger.RunRefused as exc:
        raise Refused(str(exc)) from None
    return f"Run {run_id} cancelled." if done else f"Run {run_id} had finished already."


def _rerun(request: Request, form: Any) -> str:
    run_id = request.path_params["run_id"]
    failed = request.url.path.endswith("-failed")
    try:
        new = trigger.rerun(run_id, failed_only=failed)
    except trigger.RunRefused as exc:
        raise Refused(str(exc)) from None
    what = "its failed steps" if failed else "it"
    return f"Re-running {what} as {new}."


# -- JSON ------------------------------------------------------------------------------


def api_runs(request: Request) -> Response:
    project = request.query_params.get("project") or None
    limit = min(int(request.query_params.get("limit") or 50), 500)
    runs = store.list_runs(project, limit=limit, branch=request.query_params.get("branch") or None)
    return JSONResponse({"runs": [run.to_dict() for run in runs]})


def api_run(request: Request) -> Response:
    run = store.get_run(request.path_params["run_id"])
    if run is None:
        return JSONResponse({"error": "no such run"}, status_code=404)
    return JSONResponse(run.to_dict())


def api_log(request: Request) -> Response:
    """Lines of one step after a cursor: what the run page's live log polls."""
    run_id = request.path_params["run_id"]
    step = request.query_params.get("step") or ""
    after = request.query_params.get("after") or "0-0"
    run = store.get_run(run_id)
    if run is None or run.step(step) is None:
        return JSONResponse({"error": "no such run or step"}, status_code=404)
    lines = logs.read(run_id, step, after=after, count=LOG_PAGE)
    record = run.step(step)
    finished = record is not None and record.finished is not None
    return JSONResponse(
        {
            "lines": [line for _, line in lines],
            "cursor": lines[-1][0] if lines else after,
            "done": finished and len(lines) < LOG_PAGE,
            "trimmed": after == "0-0" and logs.trimmed(run_id, step),
        }
    )


def extension() -> Extension:
    post: dict[str, Any] = {"methods": ["POST"]}
    return Extension(
        routes=[
            Route("/pipeline", projects_page),
            Route("/pipeline/projects/{name}", project_page),
            Route("/pipeline/runs/{run_id}", run_page),
            Route("/pipeline/runs/{run_id}/cancel", action(_cancel, "/pipeline"), **post),
            Route("/pipeline/runs/{run_id}/rerun", action(_rerun, "/pipeline"), **post),
            Route("/pipeline/runs/{run_id}/rerun-failed", action(_rerun, "/pipeline"), **post),
            Route("/api/pipeline/runs", api_runs),
            Route("/api/pipeline/runs/{run_id}", api_run),
            Route("/api/pipeline/runs/{run_id}/log", api_log),
            *environment_routes(),
        ],
        nav=(("pipeline", "/pipeline", "Pipelines"),),
        templates=HERE / "templates",
        panels=(Panel("_pipeline_latest.html", _latest_panel),),
    )
