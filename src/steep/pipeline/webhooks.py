"""The webhook endpoints: `POST /pipeline/hooks/github/<project>` and
`POST /pipeline/hooks/gitea/<project>`.

Verify, then parse: the signature (HMAC-SHA256 of the raw body with the project's
secret) is checked in constant time before the body is decoded; a project with no
secret accepts no webhook. They authenticate by signature alone (a forge has no
dashboard credentials), so they live outside the dashboard's guard. Each delivery id
is remembered for a week, so a redelivery does nothing twice, and every delivery is
recorded with what came of it, so a webhook that did not trigger says why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from steep.pipeline import config as pipeline_config
from steep.pipeline import store
from steep.pipeline.trigger import start_run

log = logging.getLogger("steep.pipeline")
DELIVERY_TTL = 7 * 86400
DELIVERIES_KEPT = 50
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
PR_ACTIONS = ("opened", "synchronize", "reopened")
HEADERS = {
    "github": ("x-hub-signature-256", "x-github-delivery", "x-github-event"),
    "gitea": ("x-gitea-signature", "x-gitea-delivery", "x-gitea-event"),
}


def signature(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(forge: str, secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` with `secret`, compared in constant time."""
    if not header:
        return False
    expected = signature(secret, body)
    if forge == "github":
        expected = f"sha256={expected}"
    return hmac.compare_digest(expected.encode(), header.strip().encode())


@dataclass(frozen=True, slots=True)
class Event:
    """What a delivery asks for: a run of `ref` at `sha`, or nothing (with the reason)."""

    ref: str | None = None
    sha: str | None = None
    trigger: str = "push"
    pr: int | None = None
    base_ref: str | None = None
    author: str | None = None
    message: str | None = None
    forge_repo: str | None = None
    ignored: str | None = None


class Malformed(Exception):
    pass


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            raise Malformed(f"the payload has no '{'.'.join(path)}'")
        doc = doc[key]
    return doc


def parse_event(kind: str, doc: Any) -> Event:
    """The run a `push` or `pull_request` payload asks for (the same shape on both forges)."""
    if not isinstance(doc, dict):
        raise Malformed("the payload is not a JSON object")
    repo: dict[str, Any] = doc["repository"] if isinstance(doc.get("repository"), dict) else {}
    full_name = repo.get("full_name") if isinstance(repo.get("full_name"), str) else None
    if kind == "push":
        ref = _get(doc, "ref")
        after = _get(doc, "after")
        if not isinstance(ref, str) or not isinstance(after, str):
            raise Malformed("'ref' and 'after' must be strings")
        if doc.get("deleted") or set(after) == {"0"}:
            return Event(ignored=f"{ref} was deleted")
        if not ref.startswith("refs/heads/"):
            return Event(ignored=f"{ref} is not a branch (tags are not built)")
        head: dict[str, Any] = (
            doc["head_commit"] if isinstance(doc.get("head_commit"), dict) else {}
        )
        author: dict[str, Any] = head["author"] if isinstance(head.get("author"), dict) else {}
        return Event(
            ref=ref.removeprefix("refs/heads/"),
            sha=after,
            trigger="push",
            author=author.get("name"),
            message=(head.get("message") or "").splitlines()[0] if head.get("message") else None,
            forge_repo=full_name,
        )
    if kind == "pull_request":
        action = _get(doc, "action")
        if action not in PR_ACTIONS:
            return Event(ignored=f"pull request action '{action}' does not build")
        number = _get(doc, "number")
        head_sha = _get(doc, "pull_request", "head", "sha")
        head_ref = _get(doc, "pull_request", "head", "ref")
        base_ref = _get(doc, "pull_request", "base", "ref")
        if not isinstance(number, int) or not all(
            isinstance(v, str) for v in (head_sha, head_ref, base_ref)
        ):
            raise Malformed("'number' must be an integer and the refs and sha strings")
        user = doc["pull_request"].get("user")
        return Event(
            ref=head_ref,
            sha=head_sha,
            trigger="pull_request",
            pr=number,
            base_ref=base_ref,
            author=user.get("login") if isinstance(user, dict) else None,
            message=doc["pull_request"].get("title"),
            forge_repo=full_name,
        )
    return Event(ignored=f"the '{kind}' event does not build")


def _answer(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status)


def _record(project: str, forge: str, event: str, delivery: str, status: int, result: str) -> None:
    entry = json.dumps(
        {
            "at": time.time(),
            "forge": forge,
            "event": event,
            "delivery": delivery,
            "status": status,
            "result": result,
        }
    )
    key = store.keys().deliveries(project)
    pipe = store.client().pipeline(transaction=False)
    pipe.lpush(key, entry)
    pipe.ltrim(key, 0, DELIVERIES_KEPT - 1)
    pipe.execute()


async def receive(request: Request) -> JSONResponse:
    forge = request.path_params["forge"]
    name = request.path_params["project"]
    if forge not in HEADERS:
        return _answer(404, f"no webhook endpoint for {forge!r} (github or gitea)")
    config = pipeline_config.load()
    project = config.projects.get(name)
    if project is None:
        return _answer(404, f"unknown project {name!r}")
    if project.forge != forge:
        return _answer(404, f"project {name!r} takes webhooks from {project.forge}, not {forge}")
    secret = project.webhook_secret()
    if secret is None:
        what = project.webhook_secret_env or "webhook_secret_env"
        return _answer(
            403, f"project {name!r} has no webhook secret, so it accepts no webhook: set {what}"
        )
    sig_header, delivery_header, event_header = HEADERS[forge]
    body = await request.body()
    if len(body) > MAX_BODY:
        return _answer(413, "the payload is larger than 25 MB")
    if not verify(forge, secret, body, request.headers.get(sig_header)):
        return _answer(401, f"missing or wrong signature ({sig_header})")
    delivery = request.headers.get(delivery_header) or ""
    kind = request.headers.get(event_header) or ""
    status, result, extra = await run_in_threadpool(_handle, name, forge, kind, delivery, body)
    await run_in_threadpool(_record, name, forge, kind, delivery, status, result)
    return _answer(status, result, **extra)


def _handle(
    name: str, forge: str, kind: str, delivery: str, body: bytes
) -> tuple[int, str, dict[str, Any]]:
    if kind == "ping":
        return 200, "pong", {}
    try:
        doc = json.loads(body)
        event = parse_event(kind, doc)
    except (ValueError, Malformed) as exc:
        return 400, f"malformed {kind or 'webhook'} payload: {exc}", {}
    if event.ignored:
        return 202, f"ignored: {event.ignored}", {}
    r = store.client()
    marker = store.keys().delivery(forge, delivery) if delivery else None
    if marker and not r.set(marker, "1", nx=True, ex=DELIVERY_TTL):
        return 200, f"delivery {delivery} was handled already", {}
    try:
        assert event.ref is not None
        run_id, created = start_run(
            name,
            event.ref,
            trigger=event.trigger,
            sha=event.sha,
            pr=event.pr,
            base_ref=event.base_ref,
            author=event.author,
            message=event.message,
            forge_repo=event.forge_repo,
        )
    except Exception:
        if marker:
            r.delete(marker)  # not handled: a redelivery may try again
        raise
    if not created:
        return 200, f"{event.sha} was built already by {run_id}", {"run": run_id}
    return 202, f"run {run_id} started", {"run": run_id}


def create_app() -> Starlette:
    """The webhook endpoints, to mount at /pipeline/hooks."""
    return Starlette(routes=[Route("/{forge:str}/{project:str}", receive, methods=["POST"])])


def warn_unprotected() -> list[str]:
    """Log (and return) the projects that accept no webhook, for the server's start."""
    config = pipeline_config.load()
    lines = []
    for project in config.projects.values():
        if project.forge != "none" and project.webhook_secret() is None:
            what = project.webhook_secret_env or "webhook_secret_env in steep.toml"
            lines.append(f"project {project.name!r} accepts no webhook: {what} is not set")
    for line in lines:
        log.warning(line)
    return lines
