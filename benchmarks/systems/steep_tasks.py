"""steep's plain-function jobs (server from STEEP_REDIS_URL, set by the harness).

The async flavours live in steep_async_tasks.py: a worker that imports only plain
functions runs them on its slot threads, as an application with only `def` jobs would.
"""

from __future__ import annotations

from steep import job
from systems import bodies


@job(queue="bench")
def noop_sync(i: int) -> None:
    bodies.noop(i)


@job(queue="bench")
def io_sync(i: int) -> None:
    bodies.io_sync(i)


@job(queue="bench")
def lat_sync(i: int) -> None:
    bodies.lat(i)
