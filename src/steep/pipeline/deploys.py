"""Deploy records and environment state in Redis: what runs where, and the history of
every deploy with its phases, checks and rollbacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from steep.pipeline import store

# waiting: for a person (`waiting_for` "approval") or for the deploy that runs; approved:
# a person said yes, its step is on its way; superseded: a newer deploy took its place
DEPLOY_STATES = (
    "waiting",
    "approved",
    "running",
    "succeeded",
    "failed",
    "rolled_back",
    "superseded",
)
DEPLOY_FINAL = frozenset({"succeeded", "failed", "rolled_back", "superseded"})


class Phase(msgspec.Struct):
    name: str
    at: float
    note: str = ""


class CheckResult(msgspec.Struct):
    check: str
    passed: bool
    detail: str
    seconds: float


class Approval(msgspec.Struct):
    """A person's decision on a deploy waiting for approval (or its expiry, by `steep`)."""

    by: str
    at: float
    decision: str  # approved | rejected | expired
    reason: str = ""


class Deploy(msgspec.Struct, omit_defaults=True):
    id: str
    project: str
    env: str
    sha: str
    tree: str
    digest: str
    trigger: str  # a run's trigger ("push"...), or "manual", "promote", "rollback"
    run_id: str | None = None
    state: str = "running"
    started_at: float = 0.0
    finished_at: float | None = None
    release: str | None = None
    previous: str | None = None  # the release `current` pointed to before: the rollback target
    rolled_back_to: str | None = None
    reason: str | None = None
    by: str | None = None
    spec: dict[str, Any] | None = None  # the environment as the deploy's definition had it
    phases: list[Phase] = []
    checks: list[CheckResult] = []
    lockfile: str | None = None  # where `packages` came from (steep.pipeline.lockfiles)
    packages: dict[str, str] = {}  # the Python packages the deployed tree pins
    waiting_for: str | None = None  # "approval", or "deploy <id>" (the one that runs)
    waiting_since: float | None = None
    expires_at: float | None = None  # an approval not given by then fails the deploy
    approvals: list[Approval] = []
    step: str | None = None  # the run's step that carries it out (`deploy-<env>`)
    superseded_by: str | None = None
    supersedes: str | None = None  # the waiting deploy this one took the place of

    @property
    def approved(self) -> bool:
        return any(a.decision == "approved" for a in self.approvals)

    def done(self, phase: str) -> bool:
        return any(p.name == phase for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


_decoder = msgspec.json.Decoder(Deploy)


def new_deploy(project: str, env: str, **fields: Any) -> Deploy:
    r, k = store.client(), store.keys()
    number = int(r.incr(f"{k.environment(project, env)}:seq"))  # type: ignore[arg-type]
    deploy = Deploy(
        id=f"{project}-{env}-{number}", project=project, env=env, started_at=time.time(), **fields
    )
    pipe = r.pipeline(transaction=False)
    pipe.set(k.deploy(deploy.id), msgspec.json.encode(deploy))
    pipe.zadd(k.deploys(project, env), {deploy.id: int(deploy.started_at * 1000)})
    pipe.execute()
    return deploy


def save(deploy: Deploy) -> None:
    store.client().set(store.keys().deploy(deploy.id), msgspec.json.encode(deploy))


class Conflict(Exception):
    """The record kept changing under `change` (it never is, in practice: a sign of a bug)."""


def change(
    deploy_id: str, edit: Callable[[Deploy], Deploy | None], wake: str | None = None
) -> tuple[Deploy | None, int]:
    """Apply `edit` to the stored record of a deploy, atomically: stored only if the record
    is still as `edit` saw it (pipeline_change_deploy.lua), else `edit` sees it again.
    `edit` returns the new record, None to leave it as it is, or raises. With `wake` (a
    step of the deploy's run) the step's wake count goes up in the same call.
    Returns (the record now, the wake count: 0 if nothing was changed or woken)."""
    r, k = store.client(), store.keys()
    for _ in range(20):
        raw = r.get(k.deploy(deploy_id))
        if raw is None:
            return None, 0
        new = edit(_decoder.decode(raw))  # type: ignore[arg-type]
        if new is None:
            return _decoder.decode(raw), 0  # type: ignore[arg-type]
        run_key = k.run(new.run_id) if wake and new.run_id else k.deploy(deploy_id)
        done, woken = store._script(r, "change_deploy")(
            keys=[k.deploy(deploy_id), run_key],
            args=[raw, msgspec.json.encode(new), f"woken:{wake}" if wake else ""],
        )
        if int(done):
            return new, int(woken)
    raise Conflict(f"the record of deploy {deploy_id} kept changing")


def get(deploy_id: str) -> Deploy | None:
    raw = store.client().get(store.keys().deploy(deploy_id))
    return _decoder.decode(raw) if raw else None  # type: ignore[arg-type]


def history(project: str, env: str, limit: int = 50, offset: int = 0) -> list[Deploy]:
    key = store.keys().deploys(project, env)
    ids = store.client().zrevrange(key, offset, offset + limit - 1)
    found = [get(i.decode()) for i in ids]  # type: ignore[union-attr]
    return [d for d in found if d is not None]


def of_run(project: str, env: str, run_id: str) -> Deploy | None:
    """The newest deploy a run made to `env` (a run deploys once to each environment)."""
    return next((d for d in history(project, env, 50) if d.run_id == run_id), None)


def state(project: str, env: str) -> dict[str, str]:
    raw = store.client().hgetall(store.keys().environment(project, env))
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


def names(project: str) -> list[str]:
    return sorted(n.decode() for n in store.client().smembers(store.keys().environments(project)))  # type: ignore[union-attr]


def lock(project: str, env: str, by: str, reason: str) -> None:
    set_state(project, env, locked_by=by, lock_reason=reason, locked_at=repr(time.time()))


def unlock(project: str, env: str) -> bool:
    was = state(project, env).get("locked_by") is not None
    set_state(project, env, locked_by=None, lock_reason=None, locked_at=None)
    return was


def set_state(project: str, env: str, **fields: str | None) -> None:
    store.client().sadd(store.keys().environments(project), env)
    key = store.keys().environment(project, env)
    values = {k: v for k, v in fields.items() if v is not None}
    gone = [k for k, v in fields.items() if v is None]
    pipe = store.client().pipeline(transaction=False)
    if values:
        pipe.hset(key, mapping=values)  # type: ignore[arg-type]
    if gone:
        pipe.hdel(key, *gone)
    pipe.execute()


def passed_tree(project: str, env: str, tree: str) -> Deploy | None:
    """The newest succeeded deploy of `tree` to `env` (its checks passed), if any."""
    return next(
        (d for d in history(project, env, limit=200) if d.tree == tree and d.state == "succeeded"),
        None,
    )


def live(project: str, env: str) -> Deploy | None:
    """The deploy whose release runs in `env` now (the last good one, or the one a
    rollback went back to)."""
    deploy_id = state(project, env).get("live_deploy")
    return get(deploy_id) if deploy_id else None


def deployed_differences(project: str, left: str, right: str) -> list[dict[str, str]]:
    """What runs in two environments, where it differs: the commit, the tree and each
    Python package the deployed trees pin ("(none)" where one does not have it)."""
    a, b = live(project, left), live(project, right)
    rows: list[dict[str, str]] = []
    for what, x, y in (
        ("commit", a.sha if a else None, b.sha if b else None),
        ("tree", a.tree if a else None, b.tree if b else None),
    ):
        if x != y:
            rows.append(
                {
                    "kind": "deployed",
                    "name": what,
                    "left": x or "(nothing)",
                    "right": y or "(nothing)",
                }
            )
    pa, pb = (a.packages if a else {}), (b.packages if b else {})
    for name in sorted(pa.keys() | pb.keys()):
        if pa.get(name) != pb.get(name):
            rows.append(
                {
                    "kind": "package",
                    "name": name,
                    "left": pa.get(name, "(none)"),
                    "right": pb.get(name, "(none)"),
                }
            )
    return rows
