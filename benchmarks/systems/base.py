"""The small interface every benchmarked system implements.

An adapter module ``systems/<name>.py`` exposes:

- ``VARIANTS``: the rows it contributes (one library can be set up more than one way);
- ``worker_commands(ctx) -> list[list[str]]``: the command line(s) that start its workers for one
  measurement (several commands when the library runs one worker process per command);
- ``make_producer(variant, redis_url) -> Producer``: the enqueue side, used by ``driver.py``.

Adapters are imported by the harness (``run.py``, which does not have the libraries installed)
and by ``driver.py`` inside the system's own environment, so they must import their library
lazily, inside ``make_producer``. Job bodies live in ``systems/<name>_tasks.py`` modules, which
only the worker and producer processes import.

This module only uses the standard library.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

QUEUE = "bench"
# Keys the job bodies write (see systems/bodies.py); the harness reads them.
DONE_KEY = "bench:done"
SEEN_KEY = "bench:seen"
LAT_KEY = "bench:lat"
LAT_ACK_KEY = "bench:lat:ack"

# Job kinds every tasks module provides.
KINDS = ("noop", "io", "lat")


@dataclass(frozen=True, slots=True)
class Shape:
    """How many job slots a run has: ``processes`` worker processes x ``slots`` jobs each."""

    processes: int
    slots: int
    note: str = ""

    @property
    def total(self) -> int:
        return self.processes * self.slots

    def describe(self) -> str:
        text = f"{self.processes} x {self.slots}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True, slots=True)
class Variant:
    """One row of the results: a library in one setup."""

    name: str
    adapter: str  # module name under systems/
    env: str  # benchmarks/.envs/<env>
    dists: tuple[str, ...]  # distributions whose versions are reported
    noop: Shape  # worker shape for noop drain, memory and latency
    io: Shape  # worker shape for the io scenario (same total for every system)
    setup: str  # one line: how the workers are started
    reason: str  # why this is the library's high-throughput setup
    bulk: str | None = None  # the real bulk-enqueue API, or None
    async_jobs: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Equal-terms rows (every system the same number of worker processes, a single-INCR body):
    # the job slots per process this library gets there (1: its processes run one job each),
    # None when it has no such row.
    equal_slots: int | None = None
    # set on the derived equal-terms rows: the row they derive from, and the process count
    equal_of: str | None = None

    @property
    def row(self) -> str:
        """The row whose setup this one follows (itself, unless an equal-terms row)."""
        return self.equal_of or self.name


# io slots in all, per equal-terms row, spread over its processes (rounded up).
EQUAL_IO_SLOTS = 50


def equal_terms(v: Variant, processes: int) -> Variant:
    """The equal-terms row of ``v`` with ``processes`` worker processes.

    noop and latency run ``processes x equal_slots``; io spreads 50 slots over the processes
    (rounded up) where the library has slots per process, else one job per process.
    """
    assert v.equal_slots is not None
    slots = v.equal_slots
    io_slots = 1 if slots == 1 else -(-EQUAL_IO_SLOTS // processes)
    note = "processes, one job each" if slots == 1 else "processes x slots"
    return replace(
        v,
        name=f"{v.name}-p{processes}",
        noop=Shape(processes, slots, note),
        io=Shape(processes, io_slots, note),
        bulk=None,
        equal_slots=None,
        equal_of=v.name,
    )


@dataclass(frozen=True, slots=True)
class WorkerCtx:
    """Everything an adapter needs to build its worker command lines."""

    variant: Variant
    scenario: str  # "noop" | "io" | "latency"
    shape: Shape
    redis_url: str
    bin_dir: Path  # the bin/ of the system's virtual environment

    def bin(self, name: str) -> str:
        return str(self.bin_dir / name)


class Producer(Protocol):
    """The enqueue side of one system, living in the driver process.

    ``enqueue`` (and ``enqueue_many`` where the library has a real bulk call) return ``None`` for
    synchronous libraries and an awaitable for asynchronous ones (``is_async``).
    """

    is_async: bool

    def enqueue(self, kind: str, i: int) -> Awaitable[Any] | None: ...

    def enqueue_many(self, kind: str, indices: Sequence[int]) -> Awaitable[Any] | None: ...

    def close(self) -> Awaitable[Any] | None: ...
