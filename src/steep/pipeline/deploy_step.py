"""A deploy stage's step: the checks before a deploy (the environment's lock, `requires`:
the same tree passed there), the approval it may wait for (steep.pipeline.approvals),
one deploy per environment at a time (steep.pipeline.claims), the artifact, and the
deploy itself (steep.pipeline.deploy), resumed from its record after a worker died."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from steep.pipeline import artifacts, claims, deploys, git, hosts, lockfiles
from steep.pipeline import config as pipeline_config
from steep.pipeline.definition import Plan, Step
from steep.pipeline.deploy import DeployFailed, Deployment, record_live
from steep.pipeline.environments import from_json, to_json
from steep.pipeline.logs import LogWriter
from steep.pipeline.records import Run, StepRecord
from steep.pipeline.runner import base_environment
from steep.pipeline.store import client, keys

HOLD = claims.HOLD


class Refused(Exception):
    """The deploy may not run: the message says why and what to do."""


def _differing(mirror: object, have: str | None, want: str) -> str:
    if not have:
        return "it has run nothing yet"
    try:
        out = git.run(["log", "--oneline", "--no-decorate", f"{have}...{want}", "-n", "10"], mirror)  # type: ignore[arg-type]
    except git.GitError:
        return f"it runs {have[:12]}"
    lines = out.stdout.strip().splitlines()
    return f"it runs {have[:12]}; the commits that differ: " + "; ".join(lines)


def deploy_step(
    run: Run,
    record: StepRecord,
    step: Step,
    plan: Plan,
    project: pipeline_config.Project,
    config: pipeline_config.PipelineConfig,
    writer: LogWriter,
) -> tuple[str, str | None]:
    """(step state, reason) of deploying this run's commit to `step.deploy`; ("waiting",
    why) when it waits for a person (the step's record says so, its job returns)."""
    assert step.deploy is not None
    try:
        return _deploy_step(run, record, step, plan, project, config, writer)
    except Refused as exc:  # a deploy of this run that did not start ends with the reason
        _give_up(project.name, step.deploy, run.id, str(exc))
        raise


def _deploy_step(
    run: Run,
    record: StepRecord,
    step: Step,
    plan: Plan,
    project: pipeline_config.Project,
    config: pipeline_config.PipelineConfig,
    writer: LogWriter,
) -> tuple[str, str | None]:
    assert step.deploy is not None
    env = plan.environments[step.deploy]
    name = env.name
    earlier = deploys.of_run(project.name, name, run.id)
    if earlier is not None and earlier.state in deploys.DEPLOY_FINAL:
        return _outcome(earlier, writer)  # rejected, expired, superseded while it waited
    mirror = git.mirror(project.repo, config.mirror(project.name))
    sha = run.merge_sha or run.meta.sha
    assert sha is not None
    tree, path, digest = artifacts.build(mirror, sha, config.data_dir / "artifacts" / project.name)
    writer.note(f"artifact {tree[:12]} (sha256 {digest[:16]}...)")
    deploys.set_state(project.name, name, branch=env.branch, url=env.url, strategy=env.strategy)
    live = deploys.state(project.name, name)
    if live.get("locked_by"):
        raise Refused(f"{name} is locked by {live['locked_by']}: {live.get('lock_reason', '')}")
    if env.requires:
        passed = deploys.passed_tree(project.name, env.requires, tree)
        if passed is None:
            there = deploys.state(project.name, env.requires).get("sha")
            raise Refused(
                f"tree {tree[:12]} never passed {env.requires}'s checks; "
                + _differing(mirror, there, sha)
            )
        writer.note(f"tree {tree[:12]} passed {env.requires} in deploy {passed.id}")
    if env.host and env.strategy != "releases":
        raise Refused(f"{name}: 'host' is for the releases strategy (a command runs here)")
    deploy = earlier
    if deploy is None:
        lockfile, packages = lockfiles.pinned(lambda f: git.show(mirror, sha, f))
        deploy = deploys.new_deploy(
            project.name,
            name,
            sha=sha,
            tree=tree,
            digest=digest,
            trigger="promote" if run.meta.deploy_only else run.meta.trigger,
            run_id=run.id,
            by=run.meta.author,
            spec=to_json(env),
            step=step.name,
            state="waiting" if env.approval else "running",
            lockfile=lockfile,
            packages=packages,
        )
    elif deploy.state == "running" and deploy.phases:
        writer.note(f"resuming deploy {deploy.id} after {deploy.phases[-1].name}")
    if env.approval and not deploy.approved:
        from steep.pipeline.approvals import wait_for_approval

        waits = wait_for_approval(run, record, deploy, env, project, config)
        if waits.state in deploys.DEPLOY_FINAL:  # withdrawn meanwhile: the run ended
            return _outcome(waits, writer)
        writer.note(f"{record.reason} (or it fails at {_when(waits.expires_at or 0)})")
        return "waiting", record.reason
    if deploy.state == "approved":
        yes = deploy.approvals[-1]
        writer.note(f"deploy {deploy.id} approved by {yes.by} at {_when(yes.at)}")
    try:
        deploy = claims.claim(deploy, writer.note)
    except claims.TurnLost as exc:
        raise Refused(str(exc)) from None
    if deploy.state == "superseded":
        return _outcome(deploy, writer)
    if not artifacts.verify(path, digest):
        raise Refused(f"the artifact {path} does not match its digest: rebuild it (re-run)")
    environ = {
        **base_environment(),
        **project.deploy_secret_values(name),  # masked in every line: project.masked()
        "STEEP_SHA": sha,
        "STEEP_TREE": tree,
        "STEEP_RUN_ID": run.id,
    }
    target = hosts.target(env, config.ssh)
    deployment = Deployment(deploy, env, path, environ, writer.note, writer.line, target)
    try:
        if env.strategy == "releases":
            deploy.state = deployment.run_releases()
        else:
            workdir = config.data_dir / "deploys" / deploy.id
            deploy.state = deployment.run_command(workdir)
    except (DeployFailed, OSError) as exc:
        reason = str(exc) if isinstance(exc, DeployFailed) else f"{exc.strerror or exc}"
        try:
            if deploy.done("publishing") and deployment.current_release() == deploy.release:
                deploy.state = deployment.rollback(reason)
            else:
                deploy.state, deploy.reason = "failed", f"{reason}; nothing was switched"
                writer.note(deploy.reason)
        except DeployFailed as again:  # the host went away meanwhile: say so, never guess
            deploy.state, deploy.reason = "failed", f"{reason}; then {again}"
            writer.note(deploy.reason)
    finally:
        target.close()
        deploy.finished_at = time.time()
        _mask(deploy, writer.masker)
        deployments_done(deploy)
    if deploy.state == "succeeded":
        return "passed", None
    return "failed", deploy.reason


def _mask(deploy: deploys.Deploy, masker: Callable[[str], str]) -> None:
    """No secret in the record: a check's detail or a reason may quote what a command or
    the app said."""
    if deploy.reason:
        deploy.reason = masker(deploy.reason)
    for check in deploy.checks:
        check.detail = masker(check.detail)
    for phase in deploy.phases:
        phase.note = masker(phase.note)


def deployments_done(deploy: deploys.Deploy) -> None:
    deploys.save(deploy)
    if deploy.state != "running":
        record_live(deploy)
        client().delete(keys().deploying(deploy.project, deploy.env))


def _outcome(deploy: deploys.Deploy, writer: LogWriter) -> tuple[str, str | None]:
    """The step's verdict from a deploy that ended: passed, skipped (superseded) or failed."""
    if deploy.state == "succeeded":
        return "passed", None
    reason = deploy.reason or f"deploy {deploy.id} {deploy.state}"
    writer.note(reason)
    return ("skipped" if deploy.state == "superseded" else "failed"), reason


def _give_up(project: str, env: str, run_id: str, reason: str) -> None:
    """A deploy of this run refused before it switched anything ends failed, with why
    (the claim, if it held one, goes to whoever waits)."""
    deploy = deploys.of_run(project, env, run_id)
    if deploy is None or deploy.state in deploys.DEPLOY_FINAL or deploy.phases:
        return

    def edit(d: deploys.Deploy) -> deploys.Deploy | None:
        if d.state in deploys.DEPLOY_FINAL or d.phases:
            return None
        d.state, d.reason, d.finished_at, d.waiting_for = "failed", reason, time.time(), None
        return d

    gone, _ = deploys.change(deploy.id, edit)
    if gone is not None and gone.state == "failed":
        claims.leave(project, env, deploy.id)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def rollback(project: str, name: str, release: str | None, by: str) -> deploys.Deploy:
    """Switch an environment back to an earlier release (the one before what runs, or
    `release`), restart it and check its health: recorded as a deploy of its own."""
    last = next((d for d in deploys.history(project, name, 50) if d.spec), None)
    if last is None or last.spec is None:
        raise Refused(f"{project} has never deployed to {name}: there is nothing to roll back to")
    env = from_json(last.spec)
    if env.strategy != "releases":
        raise Refused(f"{name} deploys with a command: roll back with the platform's own tool")
    notes: list[str] = []
    target = hosts.target(env, pipeline_config.load().ssh)
    try:
        current = target.current_release()
        made = {d.release: d for d in deploys.history(project, name, 200) if d.release}
        if release is None:
            now = made.get(current) if current else None
            release = now.previous if now is not None else None
            if release is None:
                raise Refused(
                    f"{name} runs {current or 'nothing'}, with no earlier release recorded"
                )
        if not target.has_release(release):
            where = f" on {target.where}" if env.host else ""
            kept = ", ".join(sorted(target.releases()))
            raise Refused(
                f"no release {release} in {target.path('releases')}{where} (kept: {kept})"
            )
    except DeployFailed as exc:  # the host is out of reach: nothing was touched
        target.close()
        raise Refused(f"{name}: {exc}") from None
    except Refused:
        target.close()
        raise
    source = made.get(release)
    deploy = deploys.new_deploy(
        project,
        name,
        sha=source.sha if source else "",
        tree=source.tree if source else "",
        digest=source.digest if source else "",
        lockfile=source.lockfile if source else None,
        packages=source.packages if source else {},
        trigger="rollback",
        by=by,
        spec=last.spec,
        release=release,
        previous=current,
    )
    key = keys().deploying(project, name)
    if not client().set(key, deploy.id, nx=True, ex=HOLD):
        holder = client().get(key)
        deploy.state, deploy.reason = "failed", f"another deploy of {name} runs: {holder!r}"
        deploy.finished_at = time.time()
        deploys.save(deploy)
        target.close()
        raise Refused(deploy.reason)
    deployment = Deployment(
        deploy, env, Path(os.devnull), base_environment(), notes.append, notes.append, target
    )
    try:
        deployment.phase("reverting", f"{current} -> {release}")
        deployment.switch(release)
        deployment.phase("publishing", f"current -> releases/{release}")
        if env.restart:
            deployment.restart()
            deployment.phase("restarting")
        healthy = deployment.check_all()
        deploy.state = "succeeded" if healthy else "failed"
        if not healthy:
            deploy.reason = f"rolled back to {release}, which is not healthy either"
        deployment.phase("finished" if healthy else "checked")
    except (DeployFailed, OSError) as exc:
        deploy.state, deploy.reason = "failed", str(exc)
    finally:
        target.close()
        deploy.finished_at = time.time()
        deployments_done(deploy)
    return deploy
