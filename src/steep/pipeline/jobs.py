"""The pipeline's steep jobs: what a run is made of, from its preparation to its
verdict and the status on the forge.

    prepare_run ──► stage 0: a batch of run_step jobs ──on_complete──► stage_done
                     └─ run_deadline (scheduled at the run's timeout)       │
                                      stage 1 ... ◄─────────────────────────┘
    a verdict (conclude) ──► send_status, notify

Each step is one job on the `pipeline` queue, so build workers are ordinary
`steep worker steep.pipeline.jobs -q pipeline` processes on any machine; the rest run
on `pipeline-control`, beside the CI server. Every job here may run twice (delivery is
at least once): each looks at the record first and does only what is still to do.
"""

from __future__ import annotations

import logging
import time

from steep import batch, job
from steep.pipeline import config as pipeline_config
from steep.pipeline import forge, git, notify, store
from steep.pipeline.definition import DefinitionError, Plan, parse
from steep.pipeline.records import STEP_FINAL, Run, StepRecord
from steep.pipeline.step import execute_step

log = logging.getLogger("steep.pipeline")
QUEUE = "pipeline"
CONTROL = "pipeline-control"
DEFINITION_FILE = "steep.toml"
# seconds past a run's timeout before its deadline job ends it: the steps end themselves at
# the run's timeout; the deadline is for a run whose steps could not (no worker took them)
DEADLINE_SLACK = 5.0


def conclude(run: Run, state: str, reason: str = "") -> bool:
    """Give the run its verdict (once) and tell the forge and the people who asked."""
    fresh = store.get_run(run.id) or run
    if fresh.final:
        return False
    # steps that will never start are skipped *before* the verdict, so whoever sees the
    # verdict sees them skipped (a step job starting meanwhile ends itself as cancelled)
    waiting = [s.name for s in fresh.steps if s.state == "waiting"]  # for a person
    for step in fresh.steps:
        if step.state in ("queued", "waiting"):  # a later stage, a step no worker took in time
            step.state, step.reason = "skipped", f"the run ended before it started ({state})"
            store.save_step(run.id, step)
    if not store.finish_run(run, state, reason):
        return False
    if waiting:  # their deploys no longer wait for an approval
        from steep.pipeline.approvals import withdraw

        withdraw(run.id, waiting, f"the run ended before it was approved ({state})")
    log.info("run %s %s%s", run.id, state, f": {reason}" if reason else "")
    send_status.enqueue(run.id)
    notify_run.enqueue(run.id)
    if run.meta.lane.startswith(gate.LANE_PREFIX):  # the merge gate moves its target, or not
        gate.merge_concluded.enqueue(run.id, run.meta.project, run.meta.base_ref or "")
    return True


@job(queue=CONTROL, retries=3, timeout=900)
def prepare_run(run_id: str) -> None:
    """Fetch the commit, read its build definition, and start the first stage."""
    run = store.get_run(run_id)
    if run is None or run.final:
        return
    config = pipeline_config.load()
    try:
        project = config.project(run.meta.project)
    except Exception as exc:
        conclude(run, "error", str(exc))
        return
    send_status.enqueue(run_id)
    try:
        mirror = git.mirror(project.repo, config.mirror(project.name))
    except git.GitError as exc:
        conclude(run, "error", f"cannot fetch {project.shown_repo}: {exc}")
        return
    m = run.meta
    sha = m.sha or git.resolve(mirror, m.ref)
    if sha is None or git.resolve(mirror, sha) is None:
        what = f"commit {sha[:12]}" if sha else f"ref {m.ref!r}"
        conclude(run, "error", f"{what} does not exist on {project.shown_repo} (any more?)")
        return
    commit = git.commit(mirror, sha)
    build_sha = commit.sha
    fields: dict[str, str | float | None] = {
        "sha": commit.sha,
        "author": m.author or commit.author,
        "message": m.message or commit.message,
    }
    if m.pr is not None:
        base = m.base_sha or (git.resolve(mirror, m.base_ref) if m.base_ref else None)
        if base is None:
            conclude(run, "error", f"the pull request's base {m.base_ref!r} does not exist")
            return
        try:
            build_sha = git.merge(mirror, base, commit.sha)
        except git.MergeConflict as exc:
            conclude(
                run,
                "error",
                f"the pull request does not merge into {m.base_ref}: conflicts in {exc}",
            )
            return
        fields.update(base_sha=base, merge_sha=build_sha)
    store.set_fields(run_id, **fields)
    text = git.show(mirror, build_sha, DEFINITION_FILE)
    if text is None:
        conclude(
            run,
            "error",
            f"no {DEFINITION_FILE} at {build_sha[:12]}: add one with a [pipeline] table",
        )
        return
    try:
        plan = parse(text, DEFINITION_FILE)
        if m.deploy_to is not None:  # `steep pipeline deploy|promote`: that environment
            plan = plan.with_deploys(None, to=m.deploy_to, only=m.deploy_only)
        elif m.pr is None and m.lane == f"branch:{m.ref}":
            plan = plan.with_deploys(m.ref)  # a green branch deploys to its environments
    except DefinitionError as exc:
        conclude(run, "error", f"the build definition is wrong: {exc}")
        return
    records = [StepRecord(name=s.name, stage=s.stage) for s in plan.steps]
    if m.failed_only and m.rerun_of and (original := store.get_run(m.rerun_of)):
        for record in records:
            before = original.step(record.name)
            if before is not None and before.state == "passed":
                record.state, record.exit_code = "passed", 0
                record.reused_from = before.reused_from or original.id
    if not store.start_run(run_id, plan.to_json(), records):
        return  # cancelled while it waited
    run_deadline.enqueue_in(plan.timeout + DEADLINE_SLACK, run_id)
    send_status.enqueue(run_id)
    start_stage(run_id, plan, 0)


def start_stage(run_id: str, plan: Plan, index: int) -> None:
    """Enqueue the steps of stage `index` that are still to run, as one batch whose
    completion (every step done, or its job dead) calls stage_done."""
    run = store.get_run(run_id)
    if run is None or run.final:
        return
    while index < len(plan.stages):
        todo = [
            s.name for s in plan.stages[index] if (r := run.step(s.name)) and r.state == "queued"
        ]
        if todo:
            break
        index += 1  # every step of the stage passed in the run re-run here
    else:
        conclude(run, "passed")
        return
    with batch(
        description=f"{run_id} stage {plan.stages[index][0].stage}",
        meta={"run": run_id, "stage": index},
        on_complete=stage_done.si(run_id, index),
    ) as b:
        for name in todo:
            timeout = plan.step(name).timeout + 120.0  # the step ends itself; this is a net
            b.add(run_step.options(timeout=timeout).s(run_id, name))


@job(queue=QUEUE, retries=2, timeout=7200)
def run_step(run_id: str, name: str, generation: int = 0) -> str:
    """One step in a fresh workspace: its verdict is the command's exit code. `generation`:
    the step's wake this job is for (0, or resume_step's)."""
    return execute_step(run_id, name, generation)


@job(queue=CONTROL, retries=5, timeout=300)
def stage_done(run_id: str, index: int, resumed: str | None = None, generation: int = 0) -> None:
    """Every step of a stage is done (or its job died): start the next stage, or conclude.
    Called too when a step run again after a person decided on its deploy (`resumed`, its
    `generation`-th wake: resume_step) is done; a stage with a step still waiting for a
    person, or running again in a batch of its own, is not done yet."""
    run = store.get_run(run_id)
    if run is None or run.final:
        return
    plan = store.plan_of(run_id)
    names = [s.name for s in plan.stages[index]]
    woken = store.wake_counts(run_id, names)
    for name in names:
        record = run.step(name)
        # the steps whose jobs were this batch's: a woken step belongs to its latest wake
        ours = woken[name] == generation if resumed else woken[name] == 0
        if resumed is not None and name != resumed:
            ours = False
        if record is not None and record.state not in STEP_FINAL and ours:
            if record.state == "waiting":
                continue  # its job returned: it waits for a person, not for a worker
            # its job died (the dead set has it): the step ends with the run, not never
            record.state, record.finished = "error", time.time()
            record.reason = (
                "its job ended without a verdict: see the dead jobs of the pipeline queue"
            )
            store.save_step(run_id, record)
    run = store.get_run(run_id)
    assert run is not None
    stage = [r for n in names if (r := run.step(n)) is not None]
    if any(r.state not in STEP_FINAL for r in stage):
        return  # the stage_done of the step's wake (or of its batch) decides
    failed = [r for r in stage if r.state in ("failed", "cancelled")]
    errors = [r for r in stage if r.state == "error"]
    if failed or errors:
        worst = (failed or errors)[0]
        state = "failed" if failed else "error"
        conclude(
            run, state, f"step {worst.name!r} {worst.state}: {worst.reason or ''}".rstrip(": ")
        )
    elif index + 1 < len(plan.stages):
        start_stage(run_id, plan, index + 1)
    else:
        conclude(run, "passed")


def resume_step(run_id: str, name: str, generation: int, waited: float = 0.0) -> None:
    """Run step `name` again after a person decided on its deploy (approved, rejected, or
    the approval expired): one job in a batch of its own, whose completion calls
    stage_done for the step's stage as its `generation`-th wake. `waited`: the seconds
    the run waited for that person, added to its deadline."""
    plan = store.plan_of(run_id)
    index = next(i for i, stage in enumerate(plan.stages) if any(s.name == name for s in stage))
    if waited > 0:
        total = store.add_waited(run_id, waited)
        run = store.get_run(run_id)
        started = run.started if run and run.started else time.time()
        left = started + plan.timeout + total - time.time()
        run_deadline.enqueue_in(max(left, 0.0) + DEADLINE_SLACK, run_id)
    with batch(
        description=f"{run_id} {name} again",
        meta={"run": run_id, "stage": index, "step": name},
        on_complete=stage_done.si(run_id, index, name, generation),
    ) as b:
        b.add(run_step.options(timeout=plan.step(name).timeout + 120.0).s(run_id, name, generation))


@job(queue=CONTROL, retries=5, timeout=60)
def run_deadline(run_id: str) -> None:
    """The run's timeout passed: whatever still runs is ended (the steps see the verdict)."""
    run = store.get_run(run_id)
    if run is None or run.final:
        return
    timeout = store.plan_of(run_id).timeout
    if any(s.state == "waiting" for s in run.steps):
        return  # waiting for a person does not count: resume_step arms the deadline again
    left = (run.started or time.time()) + timeout + store.waited(run_id) - time.time()
    if left > 0:  # moved by a wait for a person since this one was scheduled
        run_deadline.enqueue_in(left + DEADLINE_SLACK, run_id)
        return
    conclude(run, "failed", f"the run timed out after {timeout:g} s")


@job(queue=CONTROL, retries=5, timeout=60)
def expire_approval(deploy_id: str) -> None:
    """A deploy's time to be approved (`approval_timeout`) is over: it fails, unless a
    person decided meanwhile."""
    from steep.pipeline.approvals import expire

    expire(deploy_id)


def _description(run: Run) -> str:
    if run.state == "queued":
        return "queued"
    if run.state == "running" and (waiting := [s for s in run.steps if s.state == "waiting"]):
        return f"{waiting[0].reason or 'waiting for approval'}"
    if run.state == "running":
        done = sum(1 for s in run.steps if s.state in STEP_FINAL)
        return f"running: {done} of {len(run.steps)} steps done"
    if run.state == "passed":
        return f"passed in {run.duration or 0:.0f} s"
    return f"{run.state}: {run.reason or ''}".rstrip(": ")


@job(
    queue=CONTROL,
    retries=20,  # with the back-off below: about an hour of a forge being down
    timeout=120,
    backoff=0.5,
    max_backoff=300.0,
    retry_on=(forge.ForgeUnavailable,),
)
def send_status(run_id: str) -> None:
    """The run's current state to the forge. It sends what the run is *now*, and again
    if that changed meanwhile, so statuses sent late or twice end on the verdict."""
    config = pipeline_config.load()
    run = store.get_run(run_id)
    if run is None or run.meta.sha is None:
        return
    project = config.projects.get(run.meta.project)
    where = project and forge.target(project, run.meta.forge_repo, run.meta.forge_api)
    if not project or not where:
        return
    for _ in range(5):
        state = run.state
        try:
            forge.post_status(
                project, where, run.meta.sha, state, _description(run), config.run_url(run_id)
            )
        except forge.ForgeRefused as exc:
            store.set_fields(run_id, status_error=str(exc))
            log.warning("run %s: status not sent: %s", run_id, exc)
            return
        fresh = store.get_run(run_id)
        if fresh is None or fresh.state == state:
            break
        run = fresh
    store.set_fields(run_id, status_error=None)


@job(queue=CONTROL, retries=3, timeout=60)
def notify_run(run_id: str) -> None:
    """A failed run, or the first passing one after a failure: tell the receivers."""
    config = pipeline_config.load()
    run = store.get_run(run_id)
    if run is None or not run.final or run.meta.project not in config.projects:
        return
    previous = next(
        (
            r
            for r in store.list_runs(run.meta.project, limit=20, before=run.meta.created)
            if r.meta.lane == run.meta.lane and r.final and r.state != "cancelled"
        ),
        None,
    )
    event = notify.event_of(run, previous)
    if event is None:
        return
    webhook, mail_to = notify.recipients(config, config.projects[run.meta.project])
    body = notify.payload(run, event, config.run_url(run_id))
    if webhook:
        deliver_webhook.enqueue(webhook, body)
    if mail_to and config.notify.smtp_host:
        deliver_mail.enqueue(mail_to, body)


@job(queue=CONTROL, retries=10, timeout=60, backoff=1.0, retry_on=(notify.Undelivered,))
def deliver_webhook(url: str, body: dict) -> None:  # type: ignore[type-arg]
    notify.post_webhook(url, body)


@job(queue=CONTROL, retries=10, timeout=120, backoff=1.0, retry_on=(notify.Undelivered,))
def deliver_mail(recipients: list[str], body: dict) -> None:  # type: ignore[type-arg]
    notify.send_mail(pipeline_config.load(), recipients, body)


def _poll_schedule() -> str | None:
    """The poller's cron schedule: as often as the most often polled project needs (a
    whole divisor of a minute, in seconds), or none when no project is polled."""
    try:
        intervals = [p.poll for p in pipeline_config.load().projects.values() if p.poll > 0]
    except Exception:  # a broken [pipeline] table is reported where it is used
        return None
    if not intervals:
        return None
    every = max(d for d in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) if d <= max(min(intervals), 1))
    return f"*/{every} * * * * *" if every > 1 else "* * * * * *"


def poll_remotes() -> None:
    """Poll the remotes of the projects whose interval has passed."""
    from steep.pipeline.poller import poll_due

    poll_due()


_schedule = _poll_schedule()
poll_remotes = (  # type: ignore[assignment]
    job(queue=CONTROL, cron=_schedule, retries=0, timeout=300)(poll_remotes)
    if _schedule
    else job(queue=CONTROL, retries=0, timeout=300)(poll_remotes)
)


@job(queue=QUEUE, retries=0, timeout=1800)
def rollback_env(project: str, env: str, release: str | None, by: str) -> dict:  # type: ignore[type-arg]
    """`steep pipeline rollback`: on a build machine, where the releases are."""
    from steep.pipeline.deploy_step import Refused, rollback

    try:
        return rollback(project, env, release, by).to_dict()
    except Refused as exc:
        return {"state": "refused", "reason": str(exc)}


# the merge gate's and the data copies' jobs, registered with these (a worker imports
# this module only)
from steep.pipeline import data_copies, gate  # noqa: E402, F401
