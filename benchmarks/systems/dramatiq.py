"""Dramatiq with RedisBroker: the ``dramatiq`` CLI (processes x threads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from systems.base import QUEUE, Shape, Variant, WorkerCtx

VARIANTS = (
    Variant(
        name="dramatiq",
        equal_slots=10,
        adapter="dramatiq",
        env="dramatiq",
        dists=("dramatiq", "redis", "hiredis"),
        noop=Shape(2, 10, "processes x worker threads"),
        io=Shape(2, 25, "processes x worker threads"),
        setup="dramatiq systems.dramatiq_tasks -p P -t T -Q bench "
        "(RedisBroker, default middleware)",
        reason=(
            "Dramatiq's own model is worker processes x threads (default: one process per core "
            "x 8 threads); 2 processes for the 2 cores, 10 threads like the others. max_retries=0."
        ),
    ),
)


def worker_commands(ctx: WorkerCtx) -> list[list[str]]:
    return [
        [
            ctx.bin("dramatiq"),
            "systems.dramatiq_tasks",
            "-p",
            str(ctx.shape.processes),
            "-t",
            str(ctx.shape.slots),
            "-Q",
            QUEUE,
        ]
    ]


class _Producer:
    is_async = False

    def __init__(self) -> None:
        from systems import dramatiq_tasks

        self.mod = dramatiq_tasks
        self.actors = {
            "noop": dramatiq_tasks.noop,
            "io": dramatiq_tasks.io,
            "lat": dramatiq_tasks.lat,
        }

    def enqueue(self, kind: str, i: int) -> None:
        self.actors[kind].send(i)

    def enqueue_many(self, kind: str, indices: Sequence[int]) -> None:
        raise NotImplementedError("Dramatiq has no bulk enqueue")

    def close(self) -> None:
        self.mod.broker.close()


def make_producer(variant: Variant, redis_url: str) -> Any:
    return _Producer()
