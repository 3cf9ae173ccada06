"""Iterable jobs: walk a large collection in steps and resume from a saved cursor.

    @job(iterable=True)
    def reindex(table: str, cursor: int | None = None):
        start = cursor or 0
        for first in range(start, row_count(table), 500):
            index_rows(table, first, first + 500)
            yield first + 500            # where to resume once this step is done

`@job(iterable=True)` wraps the generator function (sync or async) in a driver
that runs it like any job. After each step the driver saves the yielded cursor
in the queue's slot (`<ns>:{<queue>}:cursor:<id>`), then looks at the run's
flags: a cancel ends the job (dead, `steep.Cancelled`); a worker shutdown or an
operator's interrupt raises `Interrupted`, and the worker puts the job back at
the front of its queue (shutdown) or parks it (`interrupted`, until
`ops.resume_job`). Every run, whatever ended the previous one (a crash, a
retry, a deploy, a resume), starts from the saved cursor, so at most the steps
since the last save run again: with a save after every step, only the step in
progress when the worker died.

When the generator is exhausted the record is marked done (a run after a crash
before the acknowledgement returns at once instead of walking again) and
deleted after the job is settled; a record left behind expires after
`dead_ttl`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import msgspec

from steep import hooks, options
from steep.connection import SCRIPTS, get_async_client, get_client, get_keys
from steep.context import JobContext, current_job
from steep.errors import Cancelled, SteepError
from steep.features import progress
from steep.job import decode, encode
from steep.settings import get_settings

if TYPE_CHECKING:
    import redis.asyncio

    from steep.hooks import Outcome, Settling
    from steep.job import Envelope
    from steep.registry import JobFunction

log = logging.getLogger("steep.worker")

# An interrupted job waits in the scheduled set with this due time (year 2286):
# never promoted, listed last, moved back by `ops.resume_job`.
PARKED_UNTIL_MS = 9_999_999_999_999


class Interrupted(SteepError):
    """Raised by the driver at a step boundary when the job must stop and continue later."""

    def __init__(self, why: str) -> None:
        self.why = why  # "shutdown" or "interrupt"
        super().__init__(f"stopped at a step boundary ({why})")

    @property
    def park(self) -> bool:
        return self.why == "interrupt"


def make_driver(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function a worker runs for a generator decorated with `@job(iterable=True)`."""
    sig = inspect.signature(fn)
    if "cursor" not in sig.parameters:
        raise TypeError(
            f"iterable job {fn.__qualname__} needs a `cursor` parameter "
            "(None on the first run, then the last cursor it yielded)"
        )
    if inspect.isgeneratorfunction(fn):
        driver: Callable[..., Any] = _sync_driver(fn)
    elif inspect.isasyncgenfunction(fn):
        driver = _async_driver(fn)
    else:
        raise TypeError(
            f"iterable job {fn.__qualname__} must be a generator function "
            "(`def` or `async def` with `yield cursor` after each step)"
        )
    functools.update_wrapper(driver, fn)
    # callers pass the job's own arguments; the worker supplies the cursor
    driver.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name != "cursor"],
        return_annotation=inspect.Signature.empty,
    )
    driver.__annotations__ = {
        k: v for k, v in fn.__annotations__.items() if k not in ("cursor", "return")
    }
    hooks.register(_CURSOR_HOOK)
    return driver


class _Walk:
    """One run's cursor record: `{"cursor", "steps", "at", "done"}` in the queue's slot."""

    __slots__ = ("ctx", "cursor_type", "key", "steps", "ttl")

    def __init__(self, ctx: JobContext, fn: Callable[..., Any]) -> None:
        self.ctx = ctx
        self.key = get_keys().queue(ctx.queue).cursor(ctx.id)
        self.ttl = max(1, int(get_settings().dead_ttl))
        self.steps = 0
        self.cursor_type = _cursor_type(fn)

    def opening(self) -> tuple[str, bytes]:
        """SET NX GET: read the saved record, or mark the job iterable for operators."""
        return self.key, encode({"cursor": None, "steps": 0, "at": time.time(), "done": False})

    def opened(self, raw: bytes | None) -> tuple[bool, Any]:
        """(done, cursor) from the record read at the start of the run."""
        if raw is None:
            return False, None
        saved = decode(raw)
        self.steps = int(saved.get("steps", 0))
        cursor = saved.get("cursor")
        if cursor is not None and self.cursor_type is not None:
            cursor = msgspec.convert(cursor, self.cursor_type, strict=False)
        if saved.get("done"):
            log.info("job %s had finished its walk already; settling it", self.ctx.id)
        elif self.steps:
            log.info("job %s resumes after step %d", self.ctx.id, self.steps)
        return bool(saved.get("done")), cursor

    def record(self, cursor: Any, done: bool = False) -> bytes:
        try:
            return encode({"cursor": cursor, "steps": self.steps, "at": time.time(), "done": done})
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            raise TypeError(
                f"{self.ctx.name} yielded a cursor of type {type(cursor).__qualname__} that "
                f"cannot be saved as JSON ({exc}); yield JSON types, datetime, UUID, "
                "dataclasses or Structs"
            ) from None

    def save(self, pipe: Any, cursor: Any) -> None:
        self.steps += 1
        pipe.set(self.key, self.record(cursor), ex=self.ttl)
        progress.add_pending(pipe, self.ctx)

    def check(self) -> None:
        """After a saved step: stop here if the job was cancelled or must stop."""
        run = self.ctx.run
        assert run is not None
        if run.cancelled:
            raise Cancelled("cancelled by an operator")
        if run.stopping:
            log.info(
                "job %s %s stops after step %d (%s)",
                self.ctx.id,
                self.ctx.name,
                self.steps,
                run.stopping,
                extra={"job_id": self.ctx.id, "job": self.ctx.name, "event": "interrupted"},
            )
            raise Interrupted(run.stopping)


def _cursor_type(fn: Callable[..., Any]) -> Any:
    from steep.registry import _JSON_NATIVE, _hints

    hint = _hints(fn).get("cursor")
    return None if hint is None or hint in _JSON_NATIVE else hint


def _sync_driver(fn: Callable[..., Any]) -> Callable[..., Any]:
    def drive(*args: Any, **kwargs: Any) -> Any:
        ctx = current_job()
        if ctx is None or ctx.run is None:  # called inline, outside a worker
            gen = fn(*args, cursor=None, **kwargs)
            for _ in gen:
                pass
            return None
        walk = _Walk(ctx, fn)
        client = get_client()
        key, initial = walk.opening()
        # SET ... GET replies with the previous value: bytes, or None if there was none
        raw = cast("bytes | None", client.set(key, initial, nx=True, get=True, ex=walk.ttl))
        done, cursor = walk.opened(raw)
        if done:
            return None
        gen = fn(*args, cursor=cursor, **kwargs)
        result = None
        try:
            while True:
                try:
                    cursor = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                pipe = client.pipeline(transaction=False)
                walk.save(pipe, cursor)
                pipe.execute()
                walk.check()
        finally:
            gen.close()
        client.set(walk.key, walk.record(cursor, done=True), ex=walk.ttl)
        return result

    return drive


def _async_driver(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def drive(*args: Any, **kwargs: Any) -> None:
        ctx = current_job()
        if ctx is None or ctx.run is None:
            async for _ in fn(*args, cursor=None, **kwargs):
                pass
            return
        walk = _Walk(ctx, fn)
        client = get_async_client()
        key, initial = walk.opening()
        raw = cast("bytes | None", await client.set(key, initial, nx=True, get=True, ex=walk.ttl))
        done, cursor = walk.opened(raw)
        if done:
            return
        gen = fn(*args, cursor=cursor, **kwargs)
        try:
            async for cursor in gen:
                pipe = client.pipeline(transaction=False)
                walk.save(pipe, cursor)
                await pipe.execute()
                walk.check()
        finally:
            await gen.aclose()
        await client.set(walk.key, walk.record(cursor, done=True), ex=walk.ttl)

    return drive


class _CursorHook(hooks.Hook):
    """Deletes a finished walk's cursor once its success is written."""

    name = "iterable"

    def concerns(self, envelope: Envelope, function: JobFunction[Any, Any] | None) -> bool:
        return function is not None and function.name in _ITERABLE

    async def after_settle(self, redis: redis.asyncio.Redis, outcome: Outcome) -> None:
        if outcome.ok:
            await redis.delete(get_keys().queue(outcome.queue).cursor(outcome.job_id))

    def settles(self, outcome: Outcome) -> bool:
        return type(outcome.exc) is Interrupted

    async def settle(self, settler: Settling, outcome: Outcome) -> None:
        await set_aside(settler, outcome)


_CURSOR_HOOK = _CursorHook()


async def set_aside(settler: Settling, outcome: Outcome) -> None:
    """Settle a run that stopped at a step boundary: back to the front of its queue
    (shutdown) or parked as `interrupted` (an operator's interrupt). No attempt is spent."""
    exc = outcome.exc
    assert isinstance(exc, Interrupted)
    if outcome.hooks and not await settler.with_retries(
        outcome, "run the hooks of", outcome.run_after_hooks
    ):
        return
    qk = settler.qkeys[outcome.queue]
    inflight = qk.inflight(settler.worker_id)
    argv: list[str | int]
    if exc.park:
        keys, argv = [inflight, qk.state, qk.scheduled], [outcome.job_id, PARKED_UNTIL_MS]
        script = SCRIPTS.named("iterable_park")
    else:
        keys, argv = [inflight, qk.queued, qk.state, qk.jobs], [outcome.job_id]
        script = SCRIPTS.requeue
    where = "parked until resumed" if exc.park else "returned to the front of its queue"
    if await settler.with_retries(outcome, "set aside", lambda r: script.run_async(r, keys, argv)):
        log.info(
            "job %s %s on %s interrupted: %s",
            outcome.job_id,
            outcome.name,
            outcome.queue,
            where,
            extra={"job_id": outcome.job_id, "job": outcome.name, "event": "interrupted"},
        )


# names of the jobs registered with `@job(iterable=True)`
_ITERABLE: set[str] = set()


class IterableKeyword(options.Feature):
    """`@job(iterable=True)`: the generator is run by a driver that saves its cursor."""

    name = "iterable"
    keywords = ("iterable",)

    def registering(self, fn: Callable[..., Any], keywords: dict[str, Any]) -> Callable[..., Any]:
        return make_driver(fn) if keywords.get("iterable") else fn

    def registered(self, function: JobFunction[Any, Any], keywords: dict[str, Any]) -> None:
        if keywords.get("iterable"):
            _ITERABLE.add(function.name)
        else:
            _ITERABLE.discard(function.name)


options.register(IterableKeyword())
