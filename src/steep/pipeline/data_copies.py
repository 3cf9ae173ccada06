"""Production's data into staging, from the pipeline: an environment with
`data_from = "production"` can have production's database copied over its own,
scrubbed, from the Environments page or `steep pipeline copy-data shop staging`.

The copy is steep's own `steep data copy production staging --yes` (steep.data, the
`[data]` rules of the app's steep.toml), run as a job on a build machine in the release
that runs in the environment (its `current`, here or on its host over SSH), with the
environment's variables and deploy secrets, so it reads the app's settings as the app
does. Every copy is recorded, with who asked, when, how it ended and the last lines of
its output (masked), newest first.
"""

from __future__ import annotations

import shlex
import sys
import time
import uuid
from typing import Any

import msgspec

from steep import job
from steep.pipeline import config as pipeline_config
from steep.pipeline import deploys, hosts, store
from steep.pipeline.environments import Environment, from_json
from steep.pipeline.logs import Masker

KEEP = 50  # copies kept per environment
TAIL = 40  # lines of output kept per copy
TIMEOUT = 6 * 3600.0
RECORD_TTL = 90 * 86400  # seconds a copy's record is kept


class CopyRefused(Exception):
    """The copy may not run: the message says why."""


class Copy(msgspec.Struct, omit_defaults=True):
    id: str
    project: str
    env: str
    source: str
    by: str
    requested_at: float
    state: str = "queued"  # queued, running, succeeded, failed
    release: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    lines: list[str] = []

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


_decoder = msgspec.json.Decoder(Copy)


def history(project: str, env: str, limit: int = 10) -> list[Copy]:
    r, k = store.client(), store.keys()
    ids = r.lrange(k.copies(project, env), 0, limit - 1)
    raw = r.mget([k.data_copy(i.decode()) for i in ids]) if ids else []  # type: ignore[union-attr]
    return [_decoder.decode(x) for x in raw if x]  # type: ignore[union-attr]


def _save(copy: Copy, new: bool = False) -> None:
    r, k = store.client(), store.keys()
    pipe = r.pipeline(transaction=False)
    pipe.set(k.data_copy(copy.id), msgspec.json.encode(copy), ex=RECORD_TTL)
    if new:
        pipe.lpush(k.copies(copy.project, copy.env), copy.id)
        pipe.ltrim(k.copies(copy.project, copy.env), 0, KEEP - 1)
    pipe.execute()


def _definition(project: str, env: str) -> Environment:
    """The environment as its last deploy had it (what runs there now)."""
    last = next((d for d in deploys.history(project, env, 50) if d.spec), None)
    if last is None or last.spec is None:
        raise CopyRefused(f"{project} has never deployed to {env}: nothing there to copy into")
    return from_json(last.spec)


def request(project: str, env: str, by: str) -> Copy:
    """Record and enqueue a copy of `env`'s `data_from` environment's data over `env`'s."""
    pipeline_config.load().project(project)
    definition = _definition(project, env)
    if definition.data_from is None:
        raise CopyRefused(
            f'{env} takes no copies of data: give it data_from = "production" in'
            f" [pipeline.environments.{env}]"
        )
    if definition.strategy != "releases":
        raise CopyRefused(f"{env} deploys with a command: run `steep data copy` where it runs")
    copy_id = f"{project}-{env}-copy-{uuid.uuid4().hex[:8]}"
    busy_key = store.keys().copies(project, env) + ":busy"
    # one copy into an environment at a time: the claim ends with the copy (or its timeout)
    if not store.client().set(busy_key, copy_id, nx=True, ex=int(TIMEOUT) + 600):
        busy = store.client().get(busy_key)
        raise CopyRefused(f"copy {busy.decode() if busy else '?'} into {env} has not ended yet")  # type: ignore[union-attr]
    copy = Copy(
        id=copy_id,
        project=project,
        env=env,
        source=definition.data_from,
        by=by,
        requested_at=time.time(),
    )
    _save(copy, new=True)
    copy_data.enqueue(project, env, copy.id)
    return copy


def get(project: str, env: str, copy_id: str) -> Copy | None:
    raw = store.client().get(store.keys().data_copy(copy_id))
    copy = _decoder.decode(raw) if raw else None  # type: ignore[arg-type]
    return copy if copy is not None and (copy.project, copy.env) == (project, env) else None


@job(queue="pipeline", retries=0, timeout=TIMEOUT + 60)
def copy_data(project: str, env: str, copy_id: str) -> str:
    """Run the copy in the environment's current release; its record says how it ended."""
    copy = get(project, env, copy_id)
    if copy is None or copy.state != "queued":
        return "gone"  # delivered twice: the first delivery ran it
    copy.state, copy.started_at = "running", time.time()
    _save(copy)
    try:
        config = pipeline_config.load()
        settings = config.project(project)
        definition = _definition(project, env)
        target = hosts.target(definition, config.ssh)
    except Exception as exc:  # the record ends, and the environment takes copies again
        copy.state, copy.reason, copy.finished_at = "failed", str(exc), time.time()
        _save(copy)
        store.client().delete(store.keys().copies(project, env) + ":busy")
        return copy.state
    masker = Masker(settings.masked())
    tail: list[str] = []

    def line(text: str) -> None:
        tail.append(masker(text.rstrip("\r\n")))
        del tail[:-TAIL]

    try:
        release = target.current_release()
        if release is None:
            raise hosts.DeployFailed(f"nothing runs in {env} (no `current` release)")
        copy.release = release
        steep = "steep" if definition.host else f"{shlex.quote(sys.executable)} -m steep"
        script = f"{steep} data copy {shlex.quote(copy.source)} {shlex.quote(env)} --yes"
        variables = {**definition.variables(), **settings.deploy_secret_values(env)}
        outcome = target.run(script, target.path("current"), variables, TIMEOUT, line)
        if outcome.exit_code == 0:
            copy.state = "succeeded"
        else:
            copy.state = "failed"
            last = next((t for t in reversed(tail) if t.strip()), "")
            copy.reason = last or outcome.reason or f"exit code {outcome.exit_code}"
    except (hosts.DeployFailed, OSError) as exc:
        copy.state, copy.reason = "failed", masker(str(exc))
    finally:
        target.close()
        copy.lines, copy.finished_at = tail, time.time()
        _save(copy)
        store.client().delete(store.keys().copies(project, env) + ":busy")
    return copy.state
