"""Approvals: a deploy to an environment with `approval = true` waits for a person.

    deploy step ──► checks pass ──► deploy `waiting` (for "approval"), step `waiting`,
                                    its job returns (no worker held)
    approve(project, deploy, by)  ──► deploy `approved` ──► the step runs again
                                      (resume_step) and deploys from the record
    reject(project, deploy, by, reason) / the approval_timeout ──► deploy `failed`
                                      ──► the step runs again, fails with the reason

Each decision is one atomic change of the deploy's record (pipeline_change_deploy.lua,
through deploys.change), made only if the record still waits: of two approvals, or an
approval and the expiry, one wins and the other is refused, so an approve delivered twice
deploys once. The same change counts the step's wake, so each decision runs it once.
The CLI (`steep pipeline approve|reject`) and the dashboard call the functions here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from steep.pipeline import config as pipeline_config
from steep.pipeline import deploys, notify, store
from steep.pipeline.deploy_step import Refused
from steep.pipeline.deploys import Approval, Deploy
from steep.pipeline.environments import Environment
from steep.pipeline.records import Run, StepRecord


def approve(project: str, deploy_id: str, by: str) -> Deploy:
    """Approve a deploy waiting for approval: it goes on (its step runs again)."""
    return _decide(project, deploy_id, by, "approved", "")


def reject(project: str, deploy_id: str, by: str, reason: str = "") -> Deploy:
    """Reject a deploy waiting for approval: it fails with the reason, and so does its run."""
    return _decide(project, deploy_id, by, "rejected", reason)


def waiting(project: str) -> list[Deploy]:
    """The deploys of a project waiting for an approval, oldest first."""
    found = [
        d
        for env in deploys.names(project)
        for d in deploys.history(project, env, 20)
        if d.state == "waiting" and d.waiting_for == "approval"
    ]
    return sorted(found, key=lambda d: d.started_at)


def wait_for_approval(
    run: Run,
    record: StepRecord,
    deploy: Deploy,
    env: Environment,
    project: pipeline_config.Project,
    config: pipeline_config.PipelineConfig,
) -> Deploy:
    """Leave a deploy step waiting for a person: the step's record first (so a decision
    finds the step waiting), then the deploy's (from then on it can be approved), then its
    expiry, the forge's status and the receivers of notifications. The deploy's record."""
    from steep.pipeline import jobs

    command = f"steep pipeline approve {project.name} {deploy.id}"
    record.state, record.finished = "waiting", None
    record.reason = f"{env.name} waits for approval: {command}"
    store.save_step(run.id, record)
    now = time.time()

    def edit(d: Deploy) -> Deploy | None:
        if d.state != "waiting" or d.waiting_for == "approval":
            return None
        d.waiting_for, d.waiting_since = "approval", d.waiting_since or now
        d.expires_at = d.expires_at or now + env.approval_timeout
        return d

    waits, _ = deploys.change(deploy.id, edit)
    assert waits is not None
    if waits.state in deploys.DEPLOY_FINAL:
        return waits
    expires = waits.expires_at or now + env.approval_timeout
    jobs.expire_approval.enqueue_in(max(expires - time.time(), 0.0), deploy.id)
    jobs.send_status.enqueue(run.id)
    webhook, mail_to = notify.recipients(config, project)
    mail = bool(mail_to and config.notify.smtp_host)
    if webhook or mail:
        body = notify.approval_payload(run, env.name, deploy.id, command, config.run_url(run.id))
        if webhook:
            jobs.deliver_webhook.enqueue(webhook, body)
        if mail:
            jobs.deliver_mail.enqueue(mail_to, body)
    return waits


def expire(deploy_id: str) -> Deploy | None:
    """The deploy's approval_timeout is over: if it still waits, it fails."""
    now = time.time()

    def edit(d: Deploy) -> Deploy | None:
        if d.state != "waiting" or d.waiting_for != "approval":
            return None  # decided meanwhile
        if d.expires_at is not None and d.expires_at > now + 1.0:
            return None  # not yet (a job scheduled for an earlier expiry)
        span = _span((d.expires_at or now) - (d.waiting_since or d.started_at))
        d.state, d.waiting_for, d.finished_at = "failed", None, now
        d.reason = f"not approved within {span}"
        d.approvals.append(Approval(by="steep", at=now, decision="expired", reason=d.reason))
        return d

    return _changed(deploy_id, edit, now)


def withdraw(run_id: str, steps: list[str], reason: str) -> None:
    """The run ended while these steps waited for a person: their deploys fail."""
    run = store.get_run(run_id)
    if run is None:
        return
    plan = store.plan_of(run_id)
    for name in steps:
        env = plan.step(name).deploy
        deploy = deploys.of_run(run.meta.project, env, run_id) if env else None
        if deploy is None:
            continue

        def edit(d: Deploy) -> Deploy | None:
            if d.state not in ("waiting", "approved"):
                return None
            d.state, d.waiting_for, d.finished_at, d.reason = "failed", None, time.time(), reason
            return d

        deploys.change(deploy.id, edit)


def _decide(project: str, deploy_id: str, by: str, decision: str, reason: str) -> Deploy:
    deploy = deploys.get(deploy_id)
    if deploy is None or deploy.project != project:
        raise Refused(f"no deploy {deploy_id!r} of {project} (see: steep pipeline history)")
    run = store.get_run(deploy.run_id) if deploy.run_id else None
    if run is not None and run.final and deploy.state == "waiting":
        step = deploy.step or f"deploy-{deploy.env}"
        withdraw(run.id, [step], f"the run ended before it was approved ({run.state})")
        raise Refused(f"run {run.id} ended ({run.state}): deploy {deploy_id} no longer waits")
    now = time.time()

    def edit(d: Deploy) -> Deploy | None:
        if d.state != "waiting" or d.waiting_for != "approval":
            raise Refused(_not_waiting(d))
        d.approvals.append(Approval(by=by, at=now, decision=decision, reason=reason))
        d.waiting_for = None
        if decision == "approved":
            d.state = "approved"
        else:
            d.state, d.finished_at = "failed", now
            d.reason = f"rejected by {by}" + (f": {reason}" if reason else "")
        return d

    done = _changed(deploy_id, edit, now)
    assert done is not None
    return done


def _changed(deploy_id: str, edit: Callable[[Deploy], Deploy | None], now: float) -> Deploy | None:
    """Change the record; if this call made the decision, the step runs again."""
    from steep.pipeline.jobs import resume_step

    before = deploys.get(deploy_id)
    if before is None:
        return None
    step = before.step or f"deploy-{before.env}"
    after, woken = deploys.change(deploy_id, edit, wake=step)
    if woken and after is not None and after.run_id:
        resume_step(after.run_id, step, woken, waited=now - (before.waiting_since or now))
    return after


def _not_waiting(d: Deploy) -> str:
    if d.approvals:
        last = d.approvals[-1]
        if last.decision == "expired":
            return f"deploy {d.id} was not approved in time: {last.reason}"
        return f"deploy {d.id} was {last.decision} by {last.by} at {_when(last.at)}"
    if d.state == "waiting" and d.waiting_for is None:
        return f"deploy {d.id} is not waiting for an approval yet: try again in a moment"
    return f"deploy {d.id} is {d.state}: it does not wait for an approval"


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
