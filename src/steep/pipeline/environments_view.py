"""What runs where, and what waits to go there: one project's environments as the
dashboard's Environments page and its JSON show them, and the steering both the
dashboard and the CLI use (promote, roll back).

The environments are the ones the project's deploys and runs know, in promotion order
(an environment after the one it `requires`). Between an environment and the one it
requires are the commits that run there and not yet here (`git log here..there` in
the project's mirror on this machine, as Heroku's pipeline page shows them). Values of
an environment's `env` never leave this module: only their names.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from steep.pipeline import config as pipeline_config
from steep.pipeline import data_copies, deploys, git, store
from steep.pipeline.deploys import Deploy
from steep.pipeline.environments import Environment, from_json

HISTORY = 10  # deploys per environment on the Environments page
PENDING = 50  # commits listed between two environments
_SEP = "\x1f"
_SHA = re.compile(r"[0-9a-f]{7,64}")  # what goes to git as a revision: never an option


class Refused(Exception):
    """The request cannot be carried out: the message says why."""


# -- the definitions -------------------------------------------------------------------


def definitions(project: str) -> dict[str, Environment]:
    """Each environment as the newest deploy to it had it, or else as the newest run's
    plan names it (an environment never deployed to)."""
    found: dict[str, Environment] = {}
    for run in store.list_runs(project, limit=20):
        raw = store.client().hget(store.keys().run(run.id), "plan")
        if raw is None:
            continue
        named = msgspec.json.decode(raw).get("environments") or {}  # type: ignore[arg-type]
        if named:
            found = {n: from_json(e) for n, e in named.items()}
            break
    for name in deploys.names(project):
        last = next((d for d in deploys.history(project, name, 20) if d.spec), None)
        if last is not None and last.spec is not None:
            found[name] = from_json(last.spec)
    return found


def ordered(envs: dict[str, Environment], known: list[str]) -> list[str]:
    """Promotion order: an environment after the one it requires (staging, production)."""
    names = sorted(set(envs) | set(known))

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        env = envs.get(name)
        if env is None or env.requires is None or env.requires in seen:
            return 0
        return 1 + depth(env.requires, seen | {name})

    return sorted(names, key=lambda n: (depth(n), n))


def public(env: Environment | None) -> dict[str, Any]:
    """The definition to show: `env`'s names, never their values."""
    if env is None:
        return {}
    return {
        "branch": env.branch,
        "url": env.url,
        "strategy": env.strategy,
        "requires": env.requires,
        "approval": env.approval,
        "env_names": sorted(env.env),
        "checks": [c.label for c in env.checks],
        "health": env.health,
    }


def deploy_dict(deploy: Deploy) -> dict[str, Any]:
    """A deploy record to show: its spec with the `env` names only."""
    # every field, defaults too (the record omits them: a running deploy has no "state")
    out: dict[str, Any] = msgspec.to_builtins(
        {name: getattr(deploy, name) for name in deploy.__struct_fields__}
    )
    spec = out.pop("spec", None)
    if spec is not None:
        out["env_names"] = sorted(spec.get("env") or {})
        out["strategy"] = spec.get("strategy")
        out["url"] = spec.get("url")
    out["duration"] = (
        deploy.finished_at - deploy.started_at if deploy.finished_at is not None else None
    )
    out["checks_passed"] = sum(1 for c in deploy.checks if c.passed)
    return out


# -- commits from the mirror -----------------------------------------------------------


def _mirror(project: str) -> Any:
    path = pipeline_config.load().mirror(project)
    return path if (path / "HEAD").is_file() else None


def _commits(mirror: Any, args: list[str]) -> list[dict[str, str]]:
    out = git.run(
        ["log", "--no-decorate", f"--format=%H{_SEP}%an{_SEP}%s", "-n", str(PENDING), *args],
        mirror,
    )
    rows = []
    for line in out.stdout.splitlines():
        sha, author, message = [*line.split(_SEP), "", ""][:3]
        rows.append({"sha": sha, "short": sha[:10], "author": author, "message": message})
    return rows


def missing_branch(mirror: Any, branch: str | None) -> str | None:
    """Why an environment's branch will never deploy: the remote has no such branch."""
    if mirror is None or not branch:
        return None
    heads = git.run(["for-each-ref", "--format=%(refname:short)", "refs/heads"], mirror)
    names = heads.stdout.split()
    if branch in names:
        return None
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"the remote has no branch {branch!r}, so nothing deploys here (branches: {shown})"


def commit(mirror: Any, sha: str | None) -> dict[str, str] | None:
    if not sha or mirror is None or not _SHA.fullmatch(sha):
        return None
    try:
        found = _commits(mirror, ["-n", "1", sha, "--"])
    except git.GitError:
        return None
    return found[0] if found else None


def pending(mirror: Any, upstream: str, here: str, up_sha: str | None, sha: str | None) -> Any:
    """The commits that run in `upstream` and not yet in `here`."""
    out: dict[str, Any] = {
        "from": upstream,
        "to": here,
        "commits": [],
        "same": False,
        "more": False,
    }
    if not up_sha:
        out["note"] = f"nothing runs in {upstream} yet"
        return out
    if up_sha == sha:
        out.update(same=True, note=f"{here} runs what {upstream} runs")
        return out
    if mirror is None:
        out["note"] = "this machine has no mirror of the project to compare the commits"
        return out
    if not _SHA.fullmatch(up_sha) or (sha and not _SHA.fullmatch(sha)):
        out["note"] = "cannot compare the commits: a recorded commit is not a sha"
        return out
    try:
        span = [up_sha, "--"] if not sha else [f"{sha}..{up_sha}", "--"]
        out["commits"] = _commits(mirror, span)
    except git.GitError as exc:
        out["note"] = f"cannot compare the commits: {exc}"
        return out
    if not sha:
        out["note"] = f"nothing runs in {here} yet: every commit of {upstream} waits"
    elif not out["commits"]:
        out.update(same=True, note=f"{here} has every commit {upstream} runs")
    out["more"] = len(out["commits"]) >= PENDING
    return out


# -- one environment, one project ------------------------------------------------------


def _live_deploy(history: list[Deploy], live: dict[str, str]) -> Deploy | None:
    """The deploy that put what runs there, newest first."""
    for d in history:
        if d.state != "succeeded" or d.sha != live.get("sha"):
            continue
        if live.get("release") and d.release != live.get("release"):
            continue
        return d
    return None


def environment(project: str, name: str, env: Environment | None, mirror: Any) -> dict[str, Any]:
    live = deploys.state(project, name)
    history = deploys.history(project, name, 50)
    by_id = {d.id: d for d in history}
    last = by_id.get(live.get("deploy", "")) or (history[0] if history else None)
    put = _live_deploy(history, live)
    # what `steep pipeline rollback` goes back to: the release before the first deploy of
    # the live one (steep.pipeline.deploy_step.rollback)
    made = {d.release: d for d in history if d.release}
    first = made.get(live.get("release", ""))
    url = (env.url if env else None) or live.get("url")
    return {
        "name": name,
        "definition": public(env),
        "url": url if url and url.startswith(("http://", "https://")) else None,
        "branch": (env.branch if env else None) or live.get("branch"),
        "requires": env.requires if env else None,
        "sha": live.get("sha"),
        "commit": commit(mirror, live.get("sha")),
        "tree": live.get("tree"),
        "release": live.get("release"),
        "deployed_at": float(live["deployed_at"]) if live.get("deployed_at") else None,
        "deployed_by": put.by if put else None,
        "deployed_trigger": put.trigger if put else None,
        "deployed_deploy": put.id if put else None,
        "lock": {
            "by": live["locked_by"],
            "reason": live.get("lock_reason", ""),
            "at": float(live["locked_at"]) if live.get("locked_at") else None,
        }
        if live.get("locked_by")
        else None,
        "last_deploy": deploy_dict(last) if last else None,
        "waiting": [deploy_dict(d) for d in history if d.state == "waiting"],
        "history": [deploy_dict(d) for d in history[:HISTORY]],
        "more_history": len(history) > HISTORY,
        "rollback_to": first.previous if first is not None else None,
        "problem": missing_branch(mirror, env.branch if env else None),
        "data_from": env.data_from if env else None,
        "copies": [c.to_dict() for c in data_copies.history(project, name, 5)],
    }


def project_view(project: str) -> dict[str, Any]:
    """What the Environments page shows, and its JSON."""
    pipeline_config.load().project(project)  # an unknown project: ConfigError, named
    envs = definitions(project)
    mirror = _mirror(project)
    cards = [
        environment(project, n, envs.get(n), mirror) for n in ordered(envs, deploys.names(project))
    ]
    by_name = {c["name"]: c for c in cards}
    for card in cards:
        upstream = by_name.get(card["requires"] or "")
        card["pending"] = (
            pending(mirror, upstream["name"], card["name"], upstream["sha"], card["sha"])
            if upstream is not None
            else None
        )
    busy = any(
        (c["last_deploy"] or {}).get("state") in ("running", "waiting") for c in cards
    ) or any(not r.final for r in store.list_runs(project, limit=10))
    return {
        "project": project,
        "environments": cards,
        "busy": busy,
    }


def deploys_of_run(project: str, step_names: list[str], run_id: str) -> dict[str, dict[str, Any]]:
    """The deploy each deploy step of a run made (step name -> the deploy to show)."""
    out: dict[str, dict[str, Any]] = {}
    for step in step_names:
        if not step.startswith("deploy-"):
            continue
        env = step.removeprefix("deploy-")
        made = next((d for d in deploys.history(project, env, 50) if d.run_id == run_id), None)
        if made is not None:
            out[step] = deploy_dict(made)
    return out


# -- steering --------------------------------------------------------------------------


def promote(project: str, source: str, target: str) -> tuple[str, str]:
    """Deploy to `target` what runs in `source` (its artifact, not rebuilt or retested):
    (the run's id, the commit)."""
    from steep.pipeline import start_run

    live = deploys.state(project, source)
    sha = live.get("sha")
    if not sha:
        raise Refused(f"nothing runs in {source} yet: deploy it first")
    run_id, _ = start_run(
        project,
        live.get("branch") or sha[:12],
        trigger="promote",
        sha=sha,
        lane=f"deploy:{target}",
        deploy_to=target,
        deploy_only=True,
    )
    return run_id, sha


def rollback(project: str, env: str, release: str | None, by: str, timeout: float) -> Any:
    """Switch `env` back to an earlier release, on a build machine (a job on the pipeline
    queue, where the releases are): the rollback's deploy as a dict, or None if it has
    not ended within `timeout` seconds."""
    from steep.pipeline.jobs import rollback_env

    job = rollback_env.options(result_ttl=3600).enqueue(project, env, release, by)
    try:
        return job.result(timeout=timeout)
    except TimeoutError:
        return None


def decide(project: str, deploy_id: str, by: str, approve: bool, reason: str = "") -> None:
    """Approve or reject a deploy waiting for it (steep.pipeline.approvals)."""
    from steep.pipeline import approvals
    from steep.pipeline.deploy_step import Refused as DeployRefused

    try:
        if approve:
            approvals.approve(project, deploy_id, by)
        else:
            approvals.reject(project, deploy_id, by, reason)
    except DeployRefused as exc:
        raise Refused(str(exc)) from None
