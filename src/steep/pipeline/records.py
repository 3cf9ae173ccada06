"""The records of the pipeline: a run, its stages and steps, as stored in Redis.

A run is one commit (or pull request) built once, from one trigger, ending with one
verdict. Its plan (steep.pipeline.definition) groups the steps into stages that run
in order; the steps of a stage run in parallel, each a steep job. The next issue's
deploys are stages of their own, so a stage is kept as a list of step names, not as
a kind of thing.
"""

from __future__ import annotations

from typing import Any

import msgspec

RUN_STATES = ("queued", "running", "passed", "failed", "cancelled", "error")
FINAL = frozenset({"passed", "failed", "cancelled", "error"})
# `waiting`: a deploy step waiting for a person (an approval); its job has returned
STEP_STATES = (
    "queued",
    "running",
    "waiting",
    "passed",
    "failed",
    "cancelled",
    "skipped",
    "error",
)
STEP_FINAL = frozenset({"passed", "failed", "cancelled", "skipped", "error"})
TRIGGERS = ("push", "pull_request", "poll", "manual", "rerun")


class StepRecord(msgspec.Struct, omit_defaults=True):
    name: str
    stage: str
    state: str = "queued"
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    attempt: int = 0
    reason: str | None = None  # why it failed, errored or was skipped, in one line
    host: str | None = None
    pid: int | None = None  # the step's process group (for a later attempt to end it)
    pid_started: float | None = None
    reused_from: str | None = None  # re-run of failed steps: passed in that run

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        import time

        return (self.finished or time.time()) - self.started


class RunMeta(msgspec.Struct, omit_defaults=True):
    """What a run is of: set when it is created, never changed."""

    id: str
    project: str
    ref: str  # the branch (or the pull request's head branch) or what was asked for by hand
    trigger: str
    created: float
    sha: str | None = None  # None until a run by --ref has resolved it
    lane: str = ""  # branch:<name> or pr:<n>: what supersedes what
    pr: int | None = None
    base_ref: str | None = None
    author: str | None = None
    message: str | None = None
    forge_repo: str | None = None  # owner/name, from the webhook
    forge_api: str | None = None
    rerun_of: str | None = None
    failed_only: bool = False
    base_sha: str | None = None  # a re-run tests the merge with the base its original used
    deploy_to: str | None = None  # deploy (or promote) to this environment
    deploy_only: bool = False  # a promotion: the deploy stage alone


class Run(msgspec.Struct):
    """A run as read back: its meta, its state and its steps."""

    meta: RunMeta
    state: str
    started: float | None = None
    finished: float | None = None
    reason: str | None = None
    status_error: str | None = None
    base_sha: str | None = None
    merge_sha: str | None = None
    stages: list[list[str]] = []
    steps: list[StepRecord] = []

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def settled(self) -> bool:
        """It has its verdict and no step still runs (a cancelled step takes a moment)."""
        return self.final and not any(s.state == "running" for s in self.steps)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        import time

        return (self.finished or time.time()) - self.started

    def step(self, name: str) -> StepRecord | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self.meta)
        out.update(
            state=self.state,
            started=self.started,
            finished=self.finished,
            duration=self.duration,
            reason=self.reason,
            status_error=self.status_error,
            base_sha=self.base_sha,
            merge_sha=self.merge_sha,
            stages=self.stages,
            steps=[{**msgspec.to_builtins(s), "duration": s.duration} for s in self.steps],
        )
        out.setdefault("sha", None)
        return out


def step_field(name: str) -> str:
    return f"step:{name}"


_meta_decoder = msgspec.json.Decoder(RunMeta)
_step_decoder = msgspec.json.Decoder(StepRecord)


def decode_run(raw: dict[bytes, bytes]) -> Run | None:
    """A run from its hash, or None if it is gone."""
    if not raw or b"meta" not in raw:
        return None
    fields = {k.decode(): v for k, v in raw.items()}
    meta = _meta_decoder.decode(fields["meta"])
    # what is learnt of the commit when the run starts (a run by --ref resolves its sha)
    resolved = {k: fields[k].decode() for k in ("sha", "author", "message") if k in fields}
    if resolved:
        meta = msgspec.structs.replace(meta, **resolved)
    steps: dict[str, StepRecord] = {}
    for key, value in fields.items():
        if key.startswith("step:"):
            record = _step_decoder.decode(value)
            steps[record.name] = record
    stages: list[list[str]] = []
    if "plan" in fields:
        plan = msgspec.json.decode(fields["plan"])
        stages = [[s["name"] for s in stage] for stage in plan["stages"]]
    order = [name for stage in stages for name in stage]
    ordered = [steps[n] for n in order if n in steps] + [
        s for n, s in steps.items() if n not in order
    ]

    def number(key: str) -> float | None:
        return float(fields[key]) if key in fields else None

    def text(key: str) -> str | None:
        return fields[key].decode() if key in fields else None

    return Run(
        meta=meta,
        state=fields["state"].decode(),
        started=number("started"),
        finished=number("finished"),
        reason=text("reason"),
        status_error=text("status_error"),
        base_sha=text("base_sha"),
        merge_sha=text("merge_sha"),
        stages=stages,
        steps=ordered,
    )
