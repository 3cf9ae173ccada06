"""The merge gate: `steep pipeline merge shop feature --into staging`, for teams whose git
server is a plain one (a bare repository by path, file://, ssh or http) with no forge.

The branch that deploys is never red ("not rocket science", bors): the merge of the
branch into the target is made, tested, and only when green is the target moved, to
exactly the commit that was tested.

    request_merge ──► prepare_merge (when it is the target's turn): the merge commit,
                        pushed to refs/steep/merges/<run> so every build machine sees it,
                        then jobs.prepare_run: a run of it in the lane merge:<target>
    conclude ──► merge_concluded: green → push <sha>:refs/heads/<target> with a lease on
                   the target's commit the merge was made on, then the target's own run of
                   that commit, its passed steps reused: it goes straight to its deploys
                 red, or the target moved → nothing moves, the line says why
                 either way, the next merge into the target takes its turn

Merges into one target are tested one at a time (the `merges` queue in keys.py), each on
the target as the one before it left it. Every job here may run twice: each looks at
the record first, and the merge commit is made with the run's creation time as its
date, so making it again gives the same commit.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from steep import job
from steep.pipeline import config as pipeline_config
from steep.pipeline import git, jobs, store
from steep.pipeline.records import RunMeta
from steep.pipeline.trigger import RunRefused, forget_old_runs, start_run

log = logging.getLogger("steep.pipeline")
TRIGGER = "merge"
LANE_PREFIX = "merge:"
COMMITTER = {"GIT_COMMITTER_NAME": "steep", "GIT_COMMITTER_EMAIL": "steep@localhost"}
# gate_state: waiting (for its turn) -> testing -> merged | refused | failed
SETTLED = frozenset({"merged", "refused", "failed"})
AUTHOR_RE = re.compile(r"^\s*([^<>]+?)\s*<([^<>\s]+)>\s*$")
_FIELDS = ("gate_state", "gate_line", "gate_head", "gate_ff", "gate_ref", "gate_run", "base_sha")


def parse_author(text: str) -> tuple[str, str]:
    """("Name", "mail") of `Name <mail>`; ValueError with what is expected."""
    found = AUTHOR_RE.match(text)
    if not found:
        raise ValueError(f"the author must read 'Name <mail>', got {text!r}")
    return found.group(1), found.group(2)


@dataclass(frozen=True, slots=True)
class MergeStatus:
    """Where one merge stands, as the CLI and the JSON show it."""

    id: str
    project: str
    branch: str
    target: str
    state: str  # waiting, testing, merged, refused, failed
    run_state: str
    line: str | None  # the verdict, in one line
    sha: str | None  # the commit tested (the merge commit, or the branch head with --ff)
    base: str | None  # the target's commit it was made on
    head: str | None  # the branch's commit
    target_run: str | None  # the target's run of the pushed commit (its deploys)
    ahead: str | None  # while waiting: the merge into the target before it

    @property
    def settled(self) -> bool:
        return self.state in SETTLED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_merge(project: str, branch: str, target: str, *, author: str, ff: bool = False) -> str:
    """Queue the merge of `branch` into `target`; the merge run's id. It is made and
    tested when the merges into `target` before it are settled."""
    config = pipeline_config.load()
    config.project(project)
    if branch == target:
        raise RunRefused(f"a branch does not merge into itself: give another --into than {branch}")
    parse_author(author)
    meta = RunMeta(
        id="",
        project=project,
        ref=branch,
        trigger=TRIGGER,
        created=time.time(),
        lane=LANE_PREFIX + target,
        base_ref=target,
        author=author,
    )
    run_id, _, _ = store.create_run(meta, dedupe=False, supersede=False)
    pipe = store.client().pipeline(transaction=False)
    pipe.hset(store.keys().run(run_id), mapping={"gate_state": "waiting", "gate_ff": int(ff)})
    pipe.zadd(store.keys().merges(project, target), {run_id: int(meta.created * 1000)})
    pipe.execute()
    prepare_merge.enqueue(run_id)
    forget_old_runs(project, config)
    log.info("run %s: merge of %s into %s, asked by %s", run_id, branch, target, author)
    return run_id


def status(run_id: str) -> MergeStatus | None:
    """The merge's state, or None if there is no such merge run."""
    run = store.get_run(run_id)
    if run is None or not run.meta.lane.startswith(LANE_PREFIX):
        return None
    g = _gate(run_id)
    m = run.meta
    target = m.base_ref or ""
    state = g.get("gate_state") or "waiting"
    ahead = None
    if state == "waiting":
        first = store.client().zrange(store.keys().merges(m.project, target), 0, 0)
        ahead = first[0].decode() if first and first[0].decode() != run_id else None  # type: ignore[index, union-attr]
    return MergeStatus(
        id=run_id,
        project=m.project,
        branch=m.ref,
        target=target,
        state=state,
        run_state=run.state,
        line=g.get("gate_line"),
        sha=m.sha if state != "waiting" else None,
        base=g.get("base_sha"),
        head=g.get("gate_head"),
        target_run=g.get("gate_run"),
        ahead=ahead,
    )


def _gate(run_id: str) -> dict[str, str]:
    values = store.client().hmget(store.keys().run(run_id), list(_FIELDS))
    return {k: v.decode() for k, v in zip(_FIELDS, values, strict=True) if v is not None}  # type: ignore[union-attr]


def _identity(author: str, created: float) -> dict[str, str]:
    name, mail = parse_author(author)
    date = f"{int(created)} +0000"  # the run's: made again, the merge is the same commit
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": mail,
        "GIT_AUTHOR_DATE": date,
        **COMMITTER,
        "GIT_COMMITTER_DATE": date,
    }


def _hidden_ref(run_id: str) -> str:
    """Where the merge being tested lives on the origin: not a branch, so no poller or
    push webhook builds it, but every machine's mirror fetches it."""
    return f"refs/steep/merges/{run_id}"


def _is_turn(project: str, target: str, run_id: str) -> bool:
    """Is `run_id` the first unsettled merge into `target`? Merges whose runs were
    forgotten are dropped from the queue on the way."""
    key = store.keys().merges(project, target)
    r = store.client()
    while True:
        first = r.zrange(key, 0, 0)
        if not first:
            return False
        head = first[0].decode()  # type: ignore[union-attr]
        if head == run_id:
            return True
        if store.get_run(head) is not None:
            return False
        r.zrem(key, head)


def _claim(run_id: str, fields: dict[str, str]) -> bool:
    """Record the merge made (waiting -> testing), once: False if another delivery of
    the job recorded one first (pipeline_claim_merge.lua: one slot, so a cluster too)."""
    argv = [x for pair in fields.items() for x in pair]
    claimed = store._script(store.client(), "claim_merge")(
        keys=[store.keys().run(run_id)], args=argv
    )
    return bool(int(claimed))


@job(queue=jobs.CONTROL, retries=3, timeout=900)
def prepare_merge(run_id: str) -> None:
    """On the target's turn: make the merge commit, put it on the origin out of the
    branches' way, and prepare the run that tests it (jobs.prepare_run)."""
    run = store.get_run(run_id)
    if run is None or run.final:
        return
    m = run.meta
    target = m.base_ref or ""
    if not _is_turn(m.project, target, run_id):
        return  # the merge before it starts this one when it is settled
    g = _gate(run_id)
    if g.get("gate_state", "waiting") != "waiting":
        if run.state == "queued":  # an earlier delivery recorded the merge, then stopped
            _prepare(run_id, g)
        return
    config = pipeline_config.load()
    project = config.project(m.project)
    try:
        mirror = git.mirror(project.repo, config.mirror(project.name))
    except git.GitError as exc:
        jobs.conclude(run, "error", f"cannot fetch {project.shown_repo}: {exc}")
        return
    try:
        made = _make(run, mirror, project.shown_repo, g.get("gate_ff") == "1")
    except git.GitError as exc:  # never leave the merge queued, holding its target's queue
        jobs.conclude(run, "error", f"cannot make the merge: {exc}")
        return
    if made is None:
        return
    sha, base, head, fast_forward = made
    fields = {"sha": sha, "base_sha": base, "gate_head": head}
    if not fast_forward:
        fields["gate_ref"] = _hidden_ref(run_id)
    if not _claim(run_id, fields):
        return
    _prepare(run_id, {**g, **fields})


def _make(run: Any, mirror: Any, shown_repo: str, ff: bool) -> tuple[str, str, str, bool] | None:
    """(the commit to test, the target's, the branch's, fast-forward), or None when
    the run got its verdict instead (an unknown branch, nothing to merge, a conflict)."""
    m = run.meta
    target = m.base_ref or ""
    head = git.branch_head(mirror, m.ref)
    base = git.branch_head(mirror, target)
    for name, sha in ((m.ref, head), (target, base)):
        if sha is None:
            jobs.conclude(run, "error", f"no branch {name!r} on {shown_repo}")
            return None
    assert head is not None and base is not None
    if git.is_ancestor(mirror, head, base):
        jobs.conclude(
            run, "error", f"nothing to merge: {m.ref} ({head[:12]}) is in {target} already"
        )
        return None
    fast_forward = ff and git.is_ancestor(mirror, base, head)
    try:
        sha = head if fast_forward else _merge_commit(mirror, run.meta, base, head)
    except git.MergeConflict as exc:
        jobs.conclude(run, "error", f"{m.ref} does not merge into {target}: conflicts in {exc}")
        return None
    return sha, base, head, fast_forward


def _merge_commit(mirror: Any, meta: RunMeta, base: str, head: str) -> str:
    message = f"Merge branch '{meta.ref}' into {meta.base_ref}"
    return git.merge(
        mirror, base, head, message=message, identity=_identity(meta.author or "", meta.created)
    )


def _prepare(run_id: str, g: dict[str, str]) -> None:
    """Put the recorded merge on the origin, then prepare its run as any other."""
    run = store.get_run(run_id)
    if run is None or run.final or run.meta.sha is None:
        return
    if ref := g.get("gate_ref"):
        config = pipeline_config.load()
        project = config.project(run.meta.project)
        mirror = git.mirror(project.repo, config.mirror(project.name))
        if git.resolve(mirror, run.meta.sha) is None:  # made on another machine: again here
            made = _merge_commit(mirror, run.meta, g["base_sha"], g["gate_head"])
            assert made == run.meta.sha, (made, run.meta.sha)
        try:
            git.push(mirror, project.repo, run.meta.sha, ref)
        except git.GitError as exc:
            jobs.conclude(
                run, "error", f"cannot push the merge to {ref} on {project.shown_repo}: {exc}"
            )
            return
    jobs.prepare_run(run_id)  # inline: this job is its preparation


@job(queue=jobs.CONTROL, retries=5, timeout=600)
def merge_concluded(run_id: str, project_name: str, target: str) -> None:
    """A merge run has its verdict: move the target (green), or say why not; then the
    next merge into the target takes its turn."""
    try:
        run = store.get_run(run_id)
        if run is None or _gate(run_id).get("gate_state") in SETTLED:
            return
        if run.state == "passed":
            _move_target(run)
        else:
            what = run.reason or run.state
            line = (
                f"{target} not moved: {what}"
                if run.state == "error"
                else f"{target} not moved: the merge of {run.meta.ref} {run.state}: {what}"
            )
            _settle(run_id, "failed", line)
    finally:
        if store.get_run(run_id) is None or _gate(run_id).get("gate_state") in SETTLED:
            _next_turn(project_name, target, run_id)


def _move_target(run: Any) -> None:
    config = pipeline_config.load()
    project = config.project(run.meta.project)
    m, g = run.meta, _gate(run.id)
    target, sha, base = m.base_ref, m.sha, g["base_sha"]
    lane = f"branch:{target}"
    marker = store.keys().built(project.name, lane, sha)
    mirror = git.mirror(project.repo, config.mirror(project.name))
    now = git.ls_remote(project.repo).get(target)
    if now != sha:  # not pushed yet (a second delivery finds it pushed)
        if now != base:
            _settle(run.id, "refused", _moved(target, base, now))
            return
        # a poll or a push webhook seeing the commit before its run below exists finds it
        # built already, by this run (store.BUILT_TTL, pipeline_create_run.lua)
        store.client().set(marker, run.id, nx=True, ex=store.BUILT_TTL)
        try:
            git.push(mirror, project.repo, sha, f"refs/heads/{target}", expect=base)
        except git.GitError as exc:
            now = git.ls_remote(project.repo).get(target)
            if now != sha:
                if now != base:
                    _settle(run.id, "refused", _moved(target, base, now))
                    return
                raise RuntimeError(f"cannot push {target}: {exc}") from exc
    target_run = g.get("gate_run") or _target_run(run, marker)
    _settle(
        run.id,
        "merged",
        f"{target} moved from {base[:12]} to {sha[:12]}, the commit tested in {run.id};"
        f" {target}'s run {target_run} deploys it",
        gate_run=target_run,
    )
    log.info("run %s: %s moved to %s", run.id, target, sha[:12])


def _moved(target: str, base: str, now: str | None) -> str:
    where = now[:12] if now else "nowhere (deleted)"
    return (
        f"{target} moved from {base[:12]} to {where} while the merge was tested:"
        " run the merge again"
    )


def _target_run(run: Any, marker: str) -> str:
    """The target's run of the pushed commit, its steps passed in the merge run reused:
    it goes straight to the deploy stage. Started once: the de-dup marker names it."""
    m = run.meta
    r = store.client()
    held = r.get(marker)
    if held is not None and held.decode() != run.id:  # type: ignore[union-attr]
        return held.decode()  # type: ignore[union-attr]
    target_run, _ = start_run(
        m.project,
        m.base_ref,
        trigger=TRIGGER,
        sha=m.sha,
        lane=f"branch:{m.base_ref}",
        author=m.author,
        message=m.message,
        rerun_of=run.id,
        failed_only=True,
    )
    r.set(marker, target_run, ex=store.BUILT_TTL)
    r.hset(store.keys().run(run.id), "gate_run", target_run)
    # the older runs of the branch would deploy older code after this one: superseded,
    # as a push would
    if pipeline_config.load().project(m.project).cancel_superseded:
        active = store.keys().active(m.project, f"branch:{m.base_ref}")
        for other in store.get_runs(x.decode() for x in r.smembers(active)):  # type: ignore[union-attr]
            if other.id != target_run and not other.final and other.meta.sha != m.sha:
                jobs.conclude(other, "cancelled", f"superseded by {target_run} (merge {run.id})")
    return target_run


def _settle(run_id: str, state: str, line: str, **more: str) -> None:
    """The merge's outcome, once its commit's ref is off the origin."""
    run = store.get_run(run_id)
    ref = _gate(run_id).get("gate_ref")
    if ref and run is not None:
        try:
            config = pipeline_config.load()
            project = config.project(run.meta.project)
            mirror = git.mirror(project.repo, config.mirror(project.name))
            git.delete_remote_ref(mirror, project.repo, ref)
        except git.GitError as exc:  # it only keeps a commit alive: never hold the queue
            log.warning("run %s: %s not deleted: %s", run_id, ref, exc)
    values: dict[Any, Any] = {"gate_state": state, "gate_line": line, **more}
    store.client().hset(store.keys().run(run_id), mapping=values)
    log.info("run %s: %s", run_id, line)


def _next_turn(project_name: str, target: str, run_id: str) -> None:
    """The merge is settled: the next merge into the target takes its turn."""
    r = store.client()
    key = store.keys().merges(project_name, target)
    r.zrem(key, run_id)
    first = r.zrange(key, 0, 0)
    if first:
        prepare_merge.enqueue(first[0].decode())  # type: ignore[index, union-attr]
