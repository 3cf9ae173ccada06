"""Commit statuses on GitHub and Gitea, over their REST APIs.

The pipeline reports one status per run on the commit it is about (a pull request's
head): pending while it runs, then success, failure or error, with the run's page as
`target_url`. A forge that is down (a 5xx, a timeout, a refused connection) raises
`ForgeUnavailable`, which the status job retries with a back-off; an answer that
another try would not change (401, 403, 404, 422) raises `ForgeRefused`, whose message
says what to fix. Neither message ever holds the token.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from steep.pipeline.config import Project

DEFAULT_API = {"github": "https://api.github.com"}
CONTEXT = "steep"
STATES = {  # a run's state -> the forge's
    "queued": "pending",
    "running": "pending",
    "passed": "success",
    "failed": "failure",
    "cancelled": "error",
    "error": "error",
}


class ForgeUnavailable(Exception):
    """The forge could not take the status now; trying again later may work."""


class ForgeRefused(Exception):
    """The forge refused the status; another try would be refused too."""


@dataclass(frozen=True, slots=True)
class Target:
    api: str
    repo: str  # owner/name


def repo_from_url(url: str) -> str | None:
    """owner/name from a remote's URL (https://host/owner/name.git, git@host:owner/name)."""
    match = re.search(r"[:/]([^/:]+)/([^/]+?)(?:\.git)?/?$", url)
    return f"{match[1]}/{match[2]}" if match else None


def target(project: Project, forge_repo: str | None, forge_api: str | None) -> Target | None:
    """Where statuses of `project` go, or None when it has no forge to report to."""
    if project.forge == "none" or not project.token_env:
        return None  # no token named: the project wants no statuses
    api = project.forge_api or forge_api or DEFAULT_API.get(project.forge)
    repo = project.forge_repo or forge_repo or repo_from_url(project.repo)
    if not api or not repo:
        return None
    return Target(api=api.rstrip("/"), repo=repo)


def post_status(
    project: Project,
    where: Target,
    sha: str,
    state: str,
    description: str,
    target_url: str,
    timeout: float = 10.0,
) -> None:
    token = project.token()
    if token is None:
        raise ForgeRefused(f"no API token: {project.token_env} is not set on the CI server")
    if project.forge == "github":
        url = f"{where.api}/repos/{where.repo}/statuses/{sha}"
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    else:
        url = f"{where.api}/api/v1/repos/{where.repo}/statuses/{sha}"
        headers = {"Authorization": f"token {token}", "Accept": "application/json"}
    body = json.dumps(
        {
            "state": STATES[state],
            "target_url": target_url,
            "description": description[:140],
            "context": CONTEXT,
        }
    ).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={**headers, "Content-Type": "application/json", "User-Agent": "steep-pipeline"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        said = f"{project.forge} answered {exc.code} {exc.reason} to the status of {sha[:12]}"
        if exc.code >= 500 or exc.code == 429:
            raise ForgeUnavailable(said) from None
        hint = {
            401: f": check the token in {project.token_env}",
            403: ": the token may lack the permission to write statuses",
            404: f": is {where.repo} the repository on {project.forge} (forge_repo)?",
        }.get(exc.code, "")
        raise ForgeRefused(said + hint) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ForgeUnavailable(f"{project.forge} at {where.api} is unreachable: {reason}") from None
