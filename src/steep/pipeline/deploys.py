"""Deploy records and environment state in Redis: what runs where, and the history of
every deploy with its phases, checks and rollbacks."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from steep.pipeline import store

DEPLOY_STATES = ("waiting", "running", "succeeded", "failed", "rolled_back")


class Phase(msgspec.Struct):
    name: str
    at: float
    note: str = ""


class CheckResult(msgspec.Struct):
    check: str
    passed: bool
    detail: str
    seconds: float


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


def get(deploy_id: str) -> Deploy | None:
    raw = store.client().get(store.keys().deploy(deploy_id))
    return _decoder.decode(raw) if raw else None  # type: ignore[arg-type]


def history(project: str, env: str, limit: int = 50, offset: int = 0) -> list[Deploy]:
    key = store.keys().deploys(project, env)
    ids = store.client().zrevrange(key, offset, offset + limit - 1)
    found = [get(i.decode()) for i in ids]  # type: ignore[union-attr]
    return [d for d in found if d is not None]


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
