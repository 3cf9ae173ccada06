"""The dashboard's Environments page (one card per environment of a project, in
promotion order, with what runs there, its lock, its last checks, the commits waiting
between two environments and their history), a deploy's page (its phases as a
timeline, its checks, approvals and the run it came from), their buttons (promote,
lock, unlock, roll back, approve, reject: POSTs checked by steep.web.actions) and the
same as JSON under /api/pipeline."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from steep.pipeline import config as pipeline_config
from steep.pipeline import deploys
from steep.pipeline import environments_view as view
from steep.web.actions import Refused, action
from steep.web.app import render

ROLLBACK_WAIT = 30.0  # seconds a rollback button waits for the rollback's verdict
PAGE = 50  # deploys per page of an environment's history


def dashboard_user(request: Request) -> str:
    """Who presses a button: the HTTP basic username the dashboard accepted, or
    "dashboard" (a bearer token, or a loopback client without credentials)."""
    credentials = request.app.state.config.credentials
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "basic" and credentials.username and credentials.password:
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "dashboard"
        if user == credentials.username and password == credentials.password:
            return user
    return "dashboard"


def _project(request: Request) -> str | None:
    name = str(request.path_params["name"])
    return name if name in pipeline_config.load().projects else None


def environments_page(request: Request) -> Response:
    name = _project(request)
    if name is None:
        what = f"project {request.path_params['name']}"
        return render(request, "pipeline_missing.html", page="pipeline", what=what)
    return render(
        request, "pipeline_environments.html", page="pipeline", view=view.project_view(name)
    )


def history_page(request: Request) -> Response:
    name, env = _project(request), str(request.path_params["env"])
    if name is None:
        what = f"project {request.path_params['name']}"
        return render(request, "pipeline_missing.html", page="pipeline", what=what)
    try:
        offset = max(int(request.query_params.get("offset") or 0), 0)
    except ValueError:
        offset = 0
    found = deploys.history(name, env, PAGE + 1, offset=offset)
    return render(
        request,
        "pipeline_env_history.html",
        page="pipeline",
        project=name,
        env=env,
        history=[view.deploy_dict(d) for d in found[:PAGE]],
        offset=offset,
        more=len(found) > PAGE,
        page_size=PAGE,
    )


def deploy_page(request: Request) -> Response:
    deploy_id = str(request.path_params["deploy_id"])
    deploy = deploys.get(deploy_id)
    if deploy is None:
        return render(request, "pipeline_missing.html", page="pipeline", what=f"deploy {deploy_id}")
    shown = view.deploy_dict(deploy)
    return render(
        request,
        "pipeline_deploy.html",
        page="pipeline",
        deploy=shown,
    )


def api_environments(request: Request) -> Response:
    name = _project(request)
    if name is None:
        return JSONResponse({"error": "no such project"}, status_code=404)
    return JSONResponse(view.project_view(name))


def api_deploy(request: Request) -> Response:
    deploy = deploys.get(str(request.path_params["deploy_id"]))
    if deploy is None:
        return JSONResponse({"error": "no such deploy"}, status_code=404)
    return JSONResponse(view.deploy_dict(deploy))


# -- actions ---------------------------------------------------------------------------


def _target(request: Request) -> tuple[str, str]:
    name = _project(request)
    if name is None:
        raise Refused(f"unknown project {request.path_params['name']!r}")
    return name, str(request.path_params["env"])


def _lock(request: Request, form: Any) -> str:
    project, env = _target(request)
    reason = str(form.get("reason") or "").strip()
    if not reason:
        raise Refused("say why it is locked (the reason is shown to whoever deploys)")
    deploys.lock(project, env, dashboard_user(request), reason)
    return f"{env} locked: {reason}"


def _unlock(request: Request, form: Any) -> str:
    project, env = _target(request)
    return f"{env} unlocked." if deploys.unlock(project, env) else f"{env} was not locked."


def _copy_data(request: Request, form: Any) -> str:
    from steep.pipeline import data_copies

    project, env = _target(request)
    try:
        copy = data_copies.request(project, env, dashboard_user(request))
    except data_copies.CopyRefused as exc:
        raise Refused(str(exc)) from None
    return f"Copying {copy.source}'s data into {env} ({copy.id}): Data copies says how it ends."


def _promote(request: Request, form: Any) -> str:
    project, target = _target(request)
    source = str(form.get("source") or "")
    if not source:
        raise Refused("promote from which environment? (no source given)")
    try:
        run_id, sha = view.promote(project, source, target)
    except view.Refused as exc:
        raise Refused(str(exc)) from None
    return f"Promoting {source}'s {sha[:10]} to {target}: run {run_id}."


def _rollback(request: Request, form: Any) -> str:
    project, env = _target(request)
    release = str(form.get("release") or "").strip() or None
    result = view.rollback(project, env, release, dashboard_user(request), ROLLBACK_WAIT)
    if result is None:
        return f"Rolling back {env}: still running, see its history."
    if result.get("state") == "succeeded":
        return f"{env} rolled back to {result['release']} ({result['id']})."
    raise Refused(f"not rolled back: {result.get('reason')}")


def _decide(request: Request, form: Any) -> str:
    deploy_id = str(request.path_params["deploy_id"])
    deploy = deploys.get(deploy_id)
    if deploy is None:
        raise Refused(f"no deploy {deploy_id}")
    approve = request.url.path.endswith("/approve")
    reason = str(form.get("reason") or "").strip()
    try:
        view.decide(deploy.project, deploy_id, dashboard_user(request), approve, reason)
    except view.Refused as exc:
        raise Refused(str(exc)) from None
    return f"Deploy {deploy_id} {'approved' if approve else 'rejected'}."


def routes() -> list[BaseRoute]:
    post: dict[str, Any] = {"methods": ["POST"]}
    env = "/pipeline/projects/{name}/environments/{env}"
    back = "/pipeline"
    return [
        Route("/pipeline/projects/{name}/environments", environments_page),
        Route(env, history_page),
        Route(f"{env}/lock", action(_lock, back), **post),
        Route(f"{env}/unlock", action(_unlock, back), **post),
        Route(f"{env}/promote", action(_promote, back), **post),
        Route(f"{env}/copy-data", action(_copy_data, back), **post),
        Route(f"{env}/rollback", action(_rollback, back), **post),
        Route("/pipeline/deploys/{deploy_id}", deploy_page),
        Route("/pipeline/deploys/{deploy_id}/approve", action(_decide, back), **post),
        Route("/pipeline/deploys/{deploy_id}/reject", action(_decide, back), **post),
        Route("/api/pipeline/projects/{name}/environments", api_environments),
        Route("/api/pipeline/deploys/{deploy_id}", api_deploy),
    ]
