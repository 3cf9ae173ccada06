"""Enqueue after the transaction commits, so a job never looks for a row that is not there yet.

Enqueued inside `transaction.atomic()`, a job can be picked up by a worker before
the transaction commits: it then reads no row (or the old one) and fails or,
worse, does the wrong thing. Django's `transaction.on_commit` runs the enqueue
after the commit, and never when the transaction rolls back. Outside a
transaction (autocommit) the job is enqueued at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction

from steep.job import encode

__all__ = ["enqueue_on_commit", "on_commit"]


def enqueue_on_commit(job: Any, /, *args: Any, **kwargs: Any) -> None:
    """`job.enqueue(*args, **kwargs)` once the default database's transaction commits.

    `job` is a job function or `job.options(...)`. For another database or
    `robust=True`, use `on_commit(job, using=..., robust=...)(*args, **kwargs)`.
    """
    on_commit(job)(*args, **kwargs)


def on_commit(job: Any, *, using: str | None = None, robust: bool = False) -> Callable[..., None]:
    """A function that enqueues `job` with its arguments when `using`'s transaction commits.

    `robust=True` logs a failed enqueue (server unreachable) instead of raising it
    from the end of the `atomic()` block, where the data is committed already.
    """

    def enqueue(*args: Any, **kwargs: Any) -> None:
        # A value that cannot be sent fails here, at the call, not after the commit.
        encode((args, kwargs))
        transaction.on_commit(
            functools.partial(job.enqueue, *args, **kwargs), using=using, robust=robust
        )

    return enqueue
