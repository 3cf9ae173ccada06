"""One step of a run, as its job executes it: a fresh workspace at the exact commit,
the cache restored, the setup and the command run with the run's facts in their
environment and every output line streamed, the verdict recorded, the workspace gone.

A step whose worker died mid-way runs again (its job is delivered again): the record
says the attempt was interrupted, the earlier process group is ended if it still runs
on this machine, and after MAX_ATTEMPTS the step is an error rather than a loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import socket
import time
from pathlib import Path

from steep import current_job
from steep.pipeline import cache, git, runner, store
from steep.pipeline import config as pipeline_config
from steep.pipeline.definition import Plan, Step
from steep.pipeline.logs import LogWriter, Masker
from steep.pipeline.records import STEP_FINAL, Run, StepRecord

log = logging.getLogger("steep.pipeline")
MAX_ATTEMPTS = 3
HINTS = {
    127: "the command was not found: is it installed where the build runs (PATH)?",
    126: "the command is not executable (chmod +x?)",
}


def _remake_merge(mirror: Path, run: Run) -> None:
    """A pull request's merge commit was made in the control machine's mirror; a build
    machine elsewhere makes the same one (a fixed identity and date: the same bytes, the
    same id) from the base and head it fetched."""
    assert run.merge_sha and run.base_sha and run.meta.sha
    if git.resolve(mirror, run.merge_sha) is not None:
        return
    made = git.merge(mirror, run.base_sha, run.meta.sha)
    if made != run.merge_sha:
        raise git.GitError(
            f"the merge of {run.meta.sha[:12]} into {run.base_sha[:12]} made {made[:12]} here,"
            f" not {run.merge_sha[:12]} (a different git version?)"
        )


def environment(run: Run, step: Step, plan: Plan, secrets: dict[str, str]) -> dict[str, str]:
    m = run.meta
    env = runner.base_environment()
    env.update(
        CI="true",
        STEEP_CI="true",
        STEEP_RUN_ID=run.id,
        STEEP_PROJECT=m.project,
        STEEP_REF=m.ref,
        STEEP_SHA=m.sha or "",
        STEEP_TRIGGER=m.trigger,
        STEEP_STEP=step.name,
        STEEP_STAGE=step.stage,
    )
    if m.pr is not None:
        env.update(
            STEEP_PR=str(m.pr),
            STEEP_BASE_REF=m.base_ref or "",
            STEEP_BASE_SHA=run.base_sha or "",
            STEEP_MERGE_SHA=run.merge_sha or "",
        )
    else:
        env["STEEP_BRANCH"] = m.ref
        env.update(secrets)  # a pull request's code never sees the project's secrets
    env.update(plan.env)
    env.update(step.env)
    return env


def execute_step(run_id: str, name: str, generation: int = 0) -> str:
    run = store.get_run(run_id)
    if run is None:
        return "gone"
    record = run.step(name)
    if record is None or record.state in STEP_FINAL:
        return record.state if record else "gone"
    if store.wake_counts(run_id, [name])[name] != generation:
        # a delivery from before a person's decision ran the step again (its worker died
        # after the step began to wait): the later job carries the step on, not this one
        return record.state
    if run.final:
        record.state, record.finished = "cancelled", time.time()
        record.reason = f"the run ended before it started ({run.state})"
        store.save_step(run_id, record)
        return record.state
    config = pipeline_config.load()
    plan = store.plan_of(run_id)
    step = plan.step(name)
    project = config.project(run.meta.project)
    masker = Masker(project.masked())
    host = socket.gethostname()
    interrupted = record.state == "running"
    stale = (record.pid, record.pid_started) if record.host == host else (None, None)
    if record.state != "waiting":  # a deploy a person approved goes on in the same attempt
        record.attempt += 1
    record.state, record.started, record.finished = "running", time.time(), None
    record.host, record.pid, record.pid_started, record.reason = host, None, None, None
    writer = LogWriter(run_id, name, config.log_file(run_id, name), masker, config.log_lines)
    if writer.file_error:
        writer.note(writer.file_error)
    workspace = config.workspace(run_id, name, record.attempt)
    try:
        if interrupted:
            ended = runner.end_stale(*stale)
            shutil.rmtree(config.workspace(run_id, name, record.attempt - 1), ignore_errors=True)
            writer.note(
                f"attempt {record.attempt}: the worker of the previous attempt stopped"
                + ("; its processes were ended" if ended else "")
            )
        if record.attempt > MAX_ATTEMPTS:
            return _finish(run_id, record, "error", None, f"its worker died {MAX_ATTEMPTS} times")
        store.save_step(run_id, record)
        context = current_job()
        writer.note(f"step {name} of {run_id} on {host} (job {context.id if context else '-'})")
        return _build(run, record, step, plan, project, config, workspace, writer, masker)
    except Exception as exc:  # a failure of steep's side: the step errs, the run goes on
        log.exception("run %s step %s", run_id, name)
        return _finish(run_id, record, "error", None, masker(_explain(exc, workspace)), writer)
    finally:
        writer.close()
        shutil.rmtree(workspace, ignore_errors=True)
        with contextlib.suppress(OSError):
            workspace.parent.rmdir()  # the run's folder, once its last step is done


def _build(
    run: Run,
    record: StepRecord,
    step: Step,
    plan: Plan,
    project: pipeline_config.Project,
    config: pipeline_config.PipelineConfig,
    workspace: Path,
    writer: LogWriter,
    masker: Masker,
) -> str:
    run_id = run.id
    sha = run.merge_sha or run.meta.sha
    assert sha is not None
    if step.deploy is not None:  # a deploy stage: the artifact, not a checkout
        from steep.pipeline.deploy_step import Refused, deploy_step

        try:
            state, why = deploy_step(run, record, step, plan, project, config, writer)
        except Refused as exc:
            state, why = "failed", str(exc)
            writer.note(why)
        if state == "waiting":  # for a person: the record says so already, the job returns
            return state
        return _finish(run_id, record, state, 0 if state == "passed" else None, why)
    mirror = git.mirror(project.repo, config.mirror(project.name))
    if run.merge_sha and run.base_sha and run.meta.pr is not None:
        _remake_merge(mirror, run)
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    git.checkout(mirror, sha, workspace)
    writer.note(
        f"checked out {sha[:12]}" + (f" (merge of #{run.meta.pr})" if run.merge_sha else "")
    )
    if plan.cache is not None:
        key = cache.restore(plan.cache, config.cache_root(project.name), workspace)
        writer.note(f"cache {key} restored" if key else "no cache yet for this key")
    env = environment(run, step, plan, {} if run.meta.pr is not None else project.secret_values())

    def on_start(pid: int, started: float) -> None:
        record.pid, record.pid_started = pid, started
        store.save_step(run_id, record)

    last_look = [0.0]

    def should_stop() -> str | None:
        now = time.monotonic()
        if now - last_look[0] < 0.5:  # one look at the run's state every half second
            return None
        last_look[0] = now
        state = store.state_of(run_id)
        if state in ("queued", "running"):
            return None
        return f"the run ended ({state})"

    # the step's own timeout, or what is left of the run's, whichever ends first
    run_left = (run.started or time.time()) + plan.timeout - time.time()
    limit, limited_by = (
        (step.timeout, f"timed out after {step.timeout:g} s")
        if step.timeout <= run_left
        else (run_left, f"the run timed out after {plan.timeout:g} s")
    )
    deadline = time.monotonic() + limit
    for label, script in (("setup", step.setup), ("run", step.run)):
        if not script:
            continue
        writer.note(f"{label}: {masker(script)}")
        left = deadline - time.monotonic()
        outcome = runner.run(
            script, workspace, env, max(left, 0.1), writer.line, should_stop, on_start
        )
        if outcome.exit_code is None:
            stopped = outcome.reason or "ended"
            if "timed out" in stopped:
                stopped = f"{limited_by}: its processes were ended"
            state = "cancelled" if stopped.startswith("the run ended") else "failed"
            writer.note(stopped)
            return _finish(run_id, record, state, None, stopped)
        if outcome.exit_code != 0:
            why = f"{label} exited with code {outcome.exit_code}"
            if hint := HINTS.get(outcome.exit_code):
                why += f" ({hint})"
            writer.note(why)
            return _finish(run_id, record, "failed", outcome.exit_code, why)
    if plan.cache is not None:
        try:
            if saved := cache.save(plan.cache, config.cache_root(project.name), workspace):
                writer.note(f"cache {saved} saved")
        except OSError as exc:
            writer.note(f"cache not saved: {exc.strerror or exc}")
    writer.note("passed")
    return _finish(run_id, record, "passed", 0, None)


def _finish(
    run_id: str,
    record: StepRecord,
    state: str,
    exit_code: int | None,
    reason: str | None,
    writer: LogWriter | None = None,
) -> str:
    if writer is not None and reason:
        writer.note(reason)
    record.state, record.exit_code, record.reason = state, exit_code, reason
    record.finished = time.time()
    store.save_step(run_id, record)
    return state


def _explain(exc: Exception, workspace: Path) -> str:
    if isinstance(exc, git.GitError):
        text = str(exc)
        if any(words in text for words in git.DISK_FULL):
            return f"no space left on the device of {workspace}: free some, or keep fewer runs"
        return text
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"no space left on the device of {workspace}: free some, or keep fewer runs"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or workspace}"
    return f"{type(exc).__name__}: {exc}"
