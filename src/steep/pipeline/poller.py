"""Polling git remotes, for teams with no forge or no inbound network: each project
with `poll = N` has its branches listed (`git ls-remote`) every N seconds by whichever
worker's cron tick gets there first, and each branch whose head moved gets a run.

The first poll of a project records what is there and builds only its default
branch, and only when the project has no run yet: a new project gets one first build,
and enabling polling on a busy remote does not build every branch at once.
"""

from __future__ import annotations

import logging

from steep.pipeline import config as pipeline_config
from steep.pipeline import git, store
from steep.pipeline.trigger import start_run

log = logging.getLogger("steep.pipeline")


def poll_due() -> list[str]:
    """Poll every project whose interval has passed; the ids of the runs started."""
    config = pipeline_config.load()
    started: list[str] = []
    for project in config.projects.values():
        if project.poll <= 0:
            continue
        lock = store.keys().poll_lock(project.name)
        if not store.client().set(lock, "1", nx=True, px=max(int(project.poll * 1000) - 50, 1)):
            continue
        try:
            started += poll(project)
        except git.GitError as exc:
            log.warning("polling %s failed: %s", project.name, exc)
    return started


def poll(project: pipeline_config.Project) -> list[str]:
    heads = git.ls_remote(project.repo)
    key = store.keys().heads(project.name)
    r = store.client()
    known = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}  # type: ignore[union-attr]
    first = not r.exists(key)
    started: list[str] = []
    if first and not store.client().zcard(store.keys().project_runs(project.name)):
        branch = git.default_branch(project.repo)
        if branch in heads:
            run_id, created = start_run(project.name, branch, trigger="poll", sha=heads[branch])
            started += [run_id] if created else []
    if not first:
        for branch, sha in sorted(heads.items()):
            if known.get(branch) != sha:
                run_id, created = start_run(project.name, branch, trigger="poll", sha=sha)
                if created:
                    started.append(run_id)
    pipe = r.pipeline(transaction=False)
    pipe.delete(key)
    mapping: dict[str, str] = {**heads, "": "polled"}  # "": known, if empty
    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
    pipe.execute()
    return started
