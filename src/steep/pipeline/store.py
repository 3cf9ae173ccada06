"""Reading and writing the pipeline's records in Redis (keys in steep.pipeline.keys,
atomic changes in steep/pipeline/scripts/*.lua)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import redis

from steep.connection import get_client
from steep.pipeline.definition import Plan
from steep.pipeline.keys import PipelineKeys
from steep.pipeline.records import (
    FINAL,
    Run,
    RunMeta,
    StepRecord,
    decode_run,
    step_field,
)

SCRIPTS = Path(__file__).parent / "scripts"
BUILT_TTL = 30 * 86400  # a commit of a lane is not built again by a trigger for 30 days
_encoder = msgspec.json.Encoder()
_loaded: dict[tuple[int, str], Any] = {}


def _script(client: redis.Redis, name: str) -> Any:
    key = (id(client), name)
    if key not in _loaded:
        text = (SCRIPTS / f"pipeline_{name}.lua").read_text(encoding="utf-8")
        _loaded[key] = client.register_script(text)
    return _loaded[key]


def client() -> redis.Redis:
    return get_client()


def keys() -> PipelineKeys:
    return PipelineKeys.current()


def lane_of(ref: str, pr: int | None) -> str:
    return f"pr:{pr}" if pr is not None else f"branch:{ref}"


def create_run(meta: RunMeta, *, dedupe: bool, supersede: bool) -> tuple[str, bool, list[str]]:
    """Store a new run. Returns (run id, created, older runs of its lane to cancel); when
    `dedupe` finds this commit of the lane built already, (that run's id, False, [])."""
    r, k = client(), keys()
    number = int(r.incr(k.seq(meta.project)))  # type: ignore[arg-type]
    run_id = f"{meta.project}-{number}"
    meta = msgspec.structs.replace(meta, id=run_id)
    marker = k.built(meta.project, meta.lane, meta.sha) if dedupe and meta.sha else k.run(run_id)
    result = _script(r, "create_run")(
        keys=[
            k.run(run_id),
            k.runs,
            k.project_runs(meta.project),
            k.active(meta.project, meta.lane),
            k.latest(meta.project),
            marker,
        ],
        args=[
            run_id,
            _encoder.encode(meta),
            int(meta.created * 1000),
            meta.lane,
            "1" if dedupe and meta.sha else "0",
            BUILT_TTL,
            "1" if supersede else "0",
        ],
    )
    if int(result[0]) == 0:
        return result[1].decode(), False, []
    return run_id, True, [x.decode() for x in result[1:]]


def get_run(run_id: str) -> Run | None:
    return decode_run(client().hgetall(keys().run(run_id)))  # type: ignore[arg-type]


def get_runs(run_ids: Iterable[str]) -> list[Run]:
    ids = list(run_ids)
    pipe = client().pipeline(transaction=False)
    for run_id in ids:
        pipe.hgetall(keys().run(run_id))
    return [run for raw in pipe.execute() if (run := decode_run(raw)) is not None]


def list_runs(
    project: str | None = None,
    *,
    limit: int = 50,
    branch: str | None = None,
    before: float | None = None,
) -> list[Run]:
    """Runs newest first, of one project or all; of one branch when `branch` is given."""
    k = keys()
    index = k.project_runs(project) if project else k.runs
    top = f"({int(before * 1000)}" if before else "+inf"
    found: list[Run] = []
    offset = 0
    while len(found) < limit:
        ids = client().zrevrangebyscore(index, top, "-inf", start=offset, num=limit * 2)
        if not ids:
            break
        offset += len(ids)
        for run in get_runs(i.decode() for i in ids):  # type: ignore[union-attr]
            if branch is None or (run.meta.pr is None and run.meta.ref == branch):
                found.append(run)
    return found[:limit]


def latest_by_lane(project: str) -> dict[str, Run]:
    raw = client().hgetall(keys().latest(project))
    ids = {lane.decode(): run_id.decode() for lane, run_id in raw.items()}  # type: ignore[union-attr]
    runs = {run.id: run for run in get_runs(ids.values())}
    return {lane: runs[i] for lane, i in sorted(ids.items()) if i in runs}


def start_run(run_id: str, plan_json: dict[str, Any], steps: list[StepRecord]) -> bool:
    fields: list[Any] = []
    for step in steps:
        fields += [step_field(step.name), _encoder.encode(step)]
    return bool(
        _script(client(), "start_run")(
            keys=[keys().run(run_id)], args=[repr(time.time()), _encoder.encode(plan_json), *fields]
        )
    )


def plan_of(run_id: str) -> Plan:
    raw = client().hget(keys().run(run_id), "plan")
    if raw is None:
        raise LookupError(f"run {run_id} has no plan yet")
    return Plan.from_json(msgspec.json.decode(raw))  # type: ignore[arg-type]


def set_fields(run_id: str, **fields: str | float | None) -> None:
    values = {k: (v if isinstance(v, str) else repr(v)) for k, v in fields.items() if v is not None}
    gone = [k for k, v in fields.items() if v is None]
    pipe = client().pipeline(transaction=False)
    if values:
        pipe.hset(keys().run(run_id), mapping=values)  # type: ignore[arg-type]
    if gone:
        pipe.hdel(keys().run(run_id), *gone)
    pipe.execute()


def save_step(run_id: str, step: StepRecord) -> None:
    client().hset(keys().run(run_id), step_field(step.name), _encoder.encode(step))


def wake_counts(run_id: str, steps: list[str]) -> dict[str, int]:
    """How many times each step was run again after a person decided on its deploy (the
    `woken:<step>` fields of the run, raised by pipeline_change_deploy.lua)."""
    if not steps:
        return {}
    raw = client().hmget(keys().run(run_id), [f"woken:{s}" for s in steps])
    return {s: int(v) if v else 0 for s, v in zip(steps, raw, strict=True)}  # type: ignore[arg-type]


def add_waited(run_id: str, seconds: float) -> float:
    """Add time the run spent waiting for a person (not counted against its timeout)."""
    return float(client().hincrbyfloat(keys().run(run_id), "waited", seconds))  # type: ignore[arg-type]


def waited(run_id: str) -> float:
    raw = client().hget(keys().run(run_id), "waited")
    return float(raw) if raw else 0.0  # type: ignore[arg-type]


def finish_run(run: Run, state: str, reason: str = "") -> bool:
    """Give `run` its verdict; False if it had one already."""
    assert state in FINAL
    k = keys()
    return bool(
        _script(client(), "finish_run")(
            keys=[k.run(run.id), k.active(run.meta.project, run.meta.lane)],
            args=[run.id, state, reason, repr(time.time())],
        )
    )


def state_of(run_id: str) -> str | None:
    raw = client().hget(keys().run(run_id), "state")
    return raw.decode() if raw else None  # type: ignore[union-attr]


def prune(project: str, keep: int) -> list[str]:
    """Forget a project's runs beyond the newest `keep` (records and logs); their ids."""
    r, k = client(), keys()
    old = [i.decode() for i in r.zrange(k.project_runs(project), 0, -(keep + 1))]  # type: ignore[union-attr]
    if not old:
        return []
    for run in get_runs(old):
        if not run.final:
            old.remove(run.id)  # never forget a run that is still going
    pipe = r.pipeline(transaction=False)
    for run in get_runs(old):
        for step in run.steps:
            pipe.delete(k.log(run.id, step.name))
    for run_id in old:
        pipe.delete(k.run(run_id))
        pipe.zrem(k.project_runs(project), run_id)
        pipe.zrem(k.runs, run_id)
    pipe.execute()
    return old
