"""Draining a real server in the test's own process, and flushing a namespace."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

from steep.connection import get_client, get_keys
from steep.worker import WorkerProcess, parse_queues


def drain(
    queues: Sequence[str] | None = None, *, timeout: float = 30.0, concurrency: int = 10
) -> int:
    """Run the jobs waiting on the configured server in this process, until no job is queued,
    scheduled (retries included) or running in `queues` (default: every queue steep knows);
    the number of attempts run. Jobs that the drained jobs enqueue are run too.

    A real worker does the work (in burst mode, in a thread), so retries, rate limits,
    uniqueness, batches and middleware behave as in production. Raises TimeoutError when the
    queues are not empty after `timeout` seconds (a job scheduled far ahead, say).
    """
    if queues is not None:
        return _burst(list(queues), timeout, concurrency)
    # every queue steep knows, again after each pass: the jobs may enqueue into new ones
    total, drained = 0, set[str]()
    while (known := _known_queues()) != drained:
        total += _burst(sorted(known), timeout, concurrency)
        drained = known
    return total


def _known_queues() -> set[str]:
    known = get_client().smembers(get_keys().queues)
    return {q.decode() if isinstance(q, bytes) else str(q) for q in known}


def _burst(queues: list[str], timeout: float, concurrency: int) -> int:
    if not queues:
        return 0
    worker = WorkerProcess(parse_queues(queues), concurrency, burst=True, install_signals=False)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="steep-drain", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        # stop it, even if it is still starting: a worker left running would take the jobs
        # of whatever the caller does next
        deadline = time.monotonic() + 30
        while thread.is_alive() and not hasattr(worker, "_stop"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
            worker.threadsafe(worker.request_stop, "drain timed out")
        thread.join(30)
        raise TimeoutError(
            f"drain: queues {', '.join(queues)} still had jobs queued, scheduled or running "
            f"after {timeout:g} s"
        )
    if failure:
        raise failure[0]
    return worker.processed + worker.failed


def flush_namespace(client: redis.Redis | None = None, namespace: str | None = None) -> int:
    """Delete every key of a steep namespace (default: the configured one); how many."""
    client = client or get_client()
    pattern = f"{namespace or get_keys().namespace}:*"
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted
