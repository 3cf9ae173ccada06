"""Starting, cancelling and re-running runs: what webhooks, the poller, the CLI and
the dashboard call. A run is stored first, then its `prepare_run` job is enqueued,
so a run exists from the moment it was asked for and is never lost in between."""

from __future__ import annotations

import logging
import shutil
import time

from steep.pipeline import config as pipeline_config
from steep.pipeline import store
from steep.pipeline.records import RunMeta

log = logging.getLogger("steep.pipeline")
SUPERSEDING = ("push", "pull_request", "poll")


class RunRefused(Exception):
    """A run cannot be started or changed as asked; the message says why."""


def start_run(
    project: str,
    ref: str,
    *,
    trigger: str,
    sha: str | None = None,
    pr: int | None = None,
    base_ref: str | None = None,
    author: str | None = None,
    message: str | None = None,
    forge_repo: str | None = None,
    forge_api: str | None = None,
    rerun_of: str | None = None,
    failed_only: bool = False,
    base_sha: str | None = None,
    lane: str | None = None,
    deploy_to: str | None = None,
    deploy_only: bool = False,
) -> tuple[str, bool]:
    """Start a run of `project` at `ref` (or `sha`). Returns (run id, created); a trigger
    seeing a commit its lane has built already gets that run's id and False."""
    from steep.pipeline import jobs  # imported late: the jobs start runs too (re-runs)

    config = pipeline_config.load()
    settings = config.project(project)
    meta = RunMeta(
        id="",
        project=project,
        ref=ref,
        trigger=trigger,
        created=time.time(),
        sha=sha,
        lane=lane or store.lane_of(ref, pr),
        pr=pr,
        base_ref=base_ref,
        author=author,
        message=message,
        forge_repo=forge_repo,
        forge_api=forge_api,
        rerun_of=rerun_of,
        failed_only=failed_only,
        base_sha=base_sha,
        deploy_to=deploy_to,
        deploy_only=deploy_only,
    )
    dedupe = trigger in SUPERSEDING
    run_id, created, older = store.create_run(
        meta, dedupe=dedupe, supersede=dedupe and settings.cancel_superseded
    )
    if not created:
        log.info(
            "%s %s at %s was built already by %s", project, meta.lane, (sha or "")[:12], run_id
        )
        return run_id, False
    jobs.prepare_run.enqueue(run_id)
    for other in store.get_runs(older):
        if other.id != run_id and not other.final and other.meta.sha != sha:
            jobs.conclude(other, "cancelled", f"superseded by {run_id} ({(sha or ref)[:12]})")
    forget_old_runs(project, config)
    log.info("run %s: %s %s (%s)", run_id, project, ref, trigger)
    return run_id, True


def forget_old_runs(project: str, config: pipeline_config.PipelineConfig) -> None:
    """Forget the project's runs beyond `keep_runs`, and what this machine kept of them:
    their log files, any workspace left by a worker that died."""
    for gone in store.prune(project, config.keep_runs):
        for folder in (config.data_dir / "runs" / gone, config.data_dir / "workspaces" / gone):
            shutil.rmtree(folder, ignore_errors=True)


def cancel_run(run_id: str, reason: str = "cancelled by hand") -> bool:
    """Cancel a run that has no verdict yet; False if it had one."""
    from steep.pipeline import jobs

    run = store.get_run(run_id)
    if run is None:
        raise RunRefused(f"no run {run_id!r}")
    return jobs.conclude(run, "cancelled", reason)


def rerun(run_id: str, failed_only: bool = False) -> str:
    """A new run of the same commit: every step again, or only those that did not pass
    (the passed ones are carried over, marked with the run they passed in)."""
    run = store.get_run(run_id)
    if run is None:
        raise RunRefused(f"no run {run_id!r}")
    if failed_only and not run.final:
        raise RunRefused(f"run {run_id} has no verdict yet: wait for it or cancel it first")
    if failed_only and not run.steps:
        raise RunRefused(f"run {run_id} ran no step: re-run it whole")
    if failed_only and run.state == "passed":
        raise RunRefused(f"every step of run {run_id} passed: nothing failed to re-run")
    m = run.meta
    new_id, _ = start_run(
        m.project,
        m.ref,
        trigger="rerun",
        sha=m.sha,
        pr=m.pr,
        base_ref=m.base_ref,
        author=m.author,
        message=m.message,
        forge_repo=m.forge_repo,
        forge_api=m.forge_api,
        rerun_of=run.id,
        failed_only=failed_only,
        base_sha=run.base_sha if failed_only else None,
        lane=m.lane,
    )
    return new_id
