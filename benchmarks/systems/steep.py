"""steep: ``steep worker`` (a supervisor with -p processes, -c jobs at once in each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import QUEUE, Shape, Variant, WorkerCtx

_DISTS = ("steep", "redis", "hiredis", "msgspec")
_SETUP = "steep --log-level warning worker MODULE -q bench -p P -c C"

VARIANTS = (
    Variant(
        name="steep-async",
        adapter="steep",
        env="steep",
        dists=_DISTS,
        noop=Shape(4, 10, "processes x concurrent jobs (event loop)"),
        io=Shape(5, 10, "processes x concurrent jobs (event loop)"),
        setup=_SETUP.replace("MODULE", "systems.steep_async_tasks") + " (async def jobs)",
        reason=(
            "About two processes per core, as docs/workers.md advises for jobs that block: the "
            "body waits on a round trip with a blocking client, which holds the event loop (as "
            "the RQ, Celery and Huey rows); io keeps 50 slots as 5 x 10, since its body makes "
            "the same blocking call after its sleep."
        ),
        bulk="job.enqueue_many([(i,), ...]) (one round trip per batch)",
        async_jobs=True,
    ),
    Variant(
        name="steep-sync",
        equal_slots=10,
        adapter="steep",
        env="steep",
        dists=_DISTS,
        noop=Shape(4, 10, "processes x threads"),
        io=Shape(5, 10, "processes x threads"),
        setup=_SETUP.replace("MODULE", "systems.steep_tasks")
        + " (plain def jobs, a thread per slot)",
        reason=(
            "About two processes per core, as docs/workers.md advises for jobs that block: the "
            "body's round trips overlap across processes instead of queueing for one GIL; io "
            "keeps 50 slots as 5 x 10."
        ),
        bulk="job.enqueue_many([(i,), ...]) (one round trip per batch)",
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    return [
        [
            ctx.bin("steep"),
            "--log-level",
            "warning",
            "worker",
            "systems.steep_async_tasks" if ctx.variant.async_jobs else "systems.steep_tasks",
            "-q",
            QUEUE,
            "-p",
            str(ctx.shape.processes),
            "-c",
            str(ctx.shape.slots),
        ]
    ]


class _Producer:
    # steep's enqueue is a plain call for both job flavours; the async rows only differ in
    # which function the worker runs.
    is_async = False

    def __init__(self, variant: Variant) -> None:
        if variant.async_jobs:
            from systems import steep_async_tasks as tasks
        else:
            from systems import steep_tasks as tasks  # type: ignore[no-redef]

        suffix = "async" if variant.async_jobs else "sync"
        self.jobs = {kind: getattr(tasks, f"{kind}_{suffix}") for kind in ("noop", "io", "lat")}

    def enqueue(self, kind: str, i: int) -> None:
        self.jobs[kind].enqueue(i)

    def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        self.jobs[kind].enqueue_many([(i,) for i in indices])

    def close(self) -> None:
        return None


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer(variant)
