"""Threads for sync jobs, with a cheaper hand-off than ThreadPoolExecutor.

ThreadPoolExecutor + asyncio.wrap_future costs two futures, a chain of
callbacks and one self-pipe wake-up of the event loop per job, which
dominated the profile of short sync jobs. Here a job goes in through one
SimpleQueue and results come back in batches: a finishing thread wakes the
loop only when no earlier result is still waiting to be delivered.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from queue import SimpleQueue
from typing import Any


class JobThreads:
    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._size = size
        self._inbox: SimpleQueue[tuple[asyncio.Future[Any], Any, tuple[Any, ...]] | None] = (
            SimpleQueue()
        )
        self._done: deque[tuple[asyncio.Future[Any], Any]] = deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, fn: Any, *args: Any) -> asyncio.Future[Any]:
        """Run fn(*args) in a thread; the future resolves to its return value.

        fn must not raise (the job runner catches everything itself).
        """
        future = self._loop.create_future()
        with self._lock:
            spawn = self._idle == 0 and len(self._threads) < self._size
            if not spawn:
                self._idle -= 1
        if spawn:  # threads start on demand: an async-only worker needs none
            thread = threading.Thread(
                target=self._work, name=f"steep-job-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._inbox.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            future, fn, args = item
            result = fn(*args)
            with self._lock:
                self._idle += 1
                wake = not self._done
                self._done.append((future, result))
            if wake:
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: the process is ending
                    return

    def _deliver(self) -> None:
        with self._lock:
            ready = list(self._done)
            self._done.clear()
        for future, result in ready:
            if not future.done():
                future.set_result(result)

    def shutdown(self) -> None:
        """Let idle threads end; a thread still in a job is a daemon and does not block exit."""
        for _ in self._threads:
            self._inbox.put(None)
