"""Huey with RedisHuey: ``huey_consumer`` with process workers or thread workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import Shape, Variant, WorkerCtx

_DISTS = ("huey", "redis", "hiredis")

VARIANTS = (
    Variant(
        name="huey-process",
        equal_slots=1,
        adapter="huey",
        env="huey",
        dists=_DISTS,
        noop=Shape(4, 1, "one consumer, 4 process workers"),
        io=Shape(50, 1, "one consumer, 50 process workers"),
        setup="huey_consumer systems.huey_tasks.huey -k process -w P -q -n -C "
        "(RedisHuey, results=False, blocking BRPOP)",
        reason=(
            "One consumer per machine is Huey's model; process workers sidestep the GIL. "
            "4 workers (2 per core) for noop since the body waits on a round trip."
        ),
    ),
    Variant(
        name="huey-thread",
        equal_slots=10,
        adapter="huey",
        env="huey",
        dists=_DISTS,
        noop=Shape(2, 10, "two consumers x 10 thread workers"),
        io=Shape(2, 25, "two consumers x 25 thread workers"),
        setup="P x huey_consumer systems.huey_tasks.huey -k thread -w T -q -n -C",
        reason=(
            "Threads are Huey's recommended worker type for I/O-bound tasks; one consumer "
            "per core so both cores are used despite the GIL (no periodic tasks, so two "
            "consumers are safe)."
        ),
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    base = [ctx.bin("huey_consumer"), "systems.huey_tasks.huey", "-q", "-n", "-C"]
    if ctx.variant.row == "huey-process":
        return [[*base, "-k", "process", "-w", str(ctx.shape.total)]]
    return [[*base, "-k", "thread", "-w", str(ctx.shape.slots)] for _ in range(ctx.shape.processes)]


class _Producer:
    is_async = False

    def __init__(self) -> None:
        from systems import huey_tasks

        self.huey = huey_tasks.huey
        self.tasks = {"noop": huey_tasks.noop, "io": huey_tasks.io, "lat": huey_tasks.lat}

    def enqueue(self, kind: str, i: int) -> None:
        self.tasks[kind](i)

    def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        raise NotImplementedError("Huey has no bulk enqueue (Task.map enqueues one by one)")

    def close(self) -> None:
        return None


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer()
