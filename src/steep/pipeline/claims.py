"""One deploy per environment at a time, and at most one waiting behind it: the newest.

    A runs ──────────────────────────────► ends: the claim is free
    B arrives: waits (asks every second)   │
    C arrives: takes B's place ────────────┴──► C runs
               B ends `superseded` ("superseded by run shop-9, deploy ... of <sha>"),
               its step skipped, nothing touched

The claim and the place behind it are two keys changed only by pipeline_claim_deploy.lua,
so two deploys never both run and never both wait; the records follow (deploys.change).
A waiting deploy holds its worker slot, but only one per environment can wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from steep.pipeline import deploys, store
from steep.pipeline.deploys import Deploy
from steep.pipeline.records import FINAL

HOLD = 3600  # seconds the claim lasts without being renewed
WAIT_HOLD = 30  # seconds a deploy waiting for its turn keeps its place without asking again
SUPERSEDED_TTL = 7 * 86400  # seconds the marks of superseded deploys are kept
BY_HAND = ("manual", "promote", "rollback")


class TurnLost(Exception):
    """The deploy will not get its turn (its run ended, or it lost its place)."""


def claim(deploy: Deploy, say: Callable[[str], None]) -> Deploy:
    """Wait until no other deploy of the environment runs, then hold the claim: the record
    returned is `running`, or `superseded` when a newer deploy took its place meanwhile."""
    said: str | None = None
    while True:
        answer = _script(deploy.project, deploy.env, deploy.id)
        if answer[0] == "superseded":
            gone = supersede(deploy.id, answer[1])
            if gone is None or gone.state != "superseded":
                raise TurnLost(f"deploy {deploy.id} lost its turn to deploy {answer[1]}")
            return gone
        if answer[-1]:  # the older deploy that waited here: it ends, touching nothing
            supersede(answer[-1], deploy.id)
            say(f"deploy {answer[-1]} waited for its turn: this one takes its place")
        if answer[0] == "claimed":
            taken, _ = deploys.change(deploy.id, _running)
            if taken is None or taken.state != "running":
                raise TurnLost(f"deploy {deploy.id} ended while it waited for its turn")
            return taken
        holder = answer[1]
        if said != holder:
            say(f"waiting for deploy {holder} of {deploy.env} to end")
            deploys.change(deploy.id, _waiting_for(f"deploy {holder}"))
            said = holder
        ended = store.state_of(deploy.run_id) if deploy.run_id else None
        if ended in FINAL:
            raise TurnLost(f"the run ended ({ended}) while its deploy waited for its turn")
        time.sleep(1.0)


def leave(project: str, env: str, deploy_id: str) -> None:
    """The deploy ends without deploying: it lets go of the claim, or of its place."""
    _script(project, env, deploy_id, leave=True)


def supersede(deploy_id: str, by_id: str) -> Deploy | None:
    """Deploy `deploy_id`, waiting for its turn, ends superseded by the newer `by_id`;
    its record says by which, of which commit, and that a deploy by hand gave way to an
    automatic one. Whoever gets there first writes it. Returns the record as it is now."""
    newer = deploys.get(by_id)
    now = time.time()

    def edit(d: Deploy) -> Deploy | None:
        if d.state in deploys.DEPLOY_FINAL or (d.state == "running" and d.phases):
            return None
        what = f"run {newer.run_id}, deploy {by_id}" if newer and newer.run_id else by_id
        d.reason = f"superseded by {what} of {newer.sha[:12] if newer else '?'}"
        if newer is not None and d.trigger in BY_HAND and newer.trigger not in BY_HAND:
            d.reason += f" ({newer.trigger}): this {d.trigger} deploy by {d.by or '?'} did not run"
        d.state, d.superseded_by, d.finished_at, d.waiting_for = "superseded", by_id, now, None
        return d

    gone, _ = deploys.change(deploy_id, edit)
    if newer is not None and gone is not None and gone.superseded_by == by_id:

        def note(d: Deploy) -> Deploy | None:
            if d.supersedes == deploy_id:
                return None
            d.supersedes = deploy_id
            return d

        deploys.change(by_id, note)
    return gone


def _script(project: str, env: str, deploy_id: str, leave: bool = False) -> list[str]:
    r, k = store.client(), store.keys()
    answer = store._script(r, "claim_deploy")(
        keys=[k.deploying(project, env), k.deploy_next(project, env), k.superseded(project, env)],
        args=[deploy_id, HOLD, WAIT_HOLD, SUPERSEDED_TTL, "leave" if leave else ""],
    )
    return [x.decode() for x in answer]


def _running(d: Deploy) -> Deploy | None:
    if d.state not in ("running", "approved", "waiting"):
        return None
    d.state, d.waiting_for = "running", None
    return d


def _waiting_for(what: str) -> Callable[[Deploy], Deploy | None]:
    def edit(d: Deploy) -> Deploy | None:
        if d.state not in ("running", "approved", "waiting") or d.phases:
            return None  # superseded meanwhile, or resumed mid-way (it keeps its state)
        d.state, d.waiting_for = "waiting", what
        d.waiting_since = time.time()
        return d

    return edit
