"""The watchdog of slot threads' timeouts (worker/slots.py): one thread per process."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import TYPE_CHECKING

from steep.errors import JobTimeout
from steep.worker import executor
from steep.worker.executor import _ThreadCall

if TYPE_CHECKING:
    from steep.worker.process import WorkerProcess
    from steep.worker.slots import SlotThread


class Deadline:
    """A timed job's watch: fired once when its time is up, cleared when it ends."""

    __slots__ = ("call", "fired", "job_id", "live", "slot")

    def __init__(self, slot: SlotThread, call: _ThreadCall, job_id: str) -> None:
        self.slot = slot
        self.call = call
        self.job_id = job_id
        self.live = True
        self.fired = False


class Watchdog(threading.Thread):
    """One thread per process that raises JobTimeout in slot jobs that overrun.

    Arming costs a heap push; the thread is woken only for a deadline earlier than any
    it already waits for (jobs of one timeout arrive in deadline order and wake nothing).
    A job that ignores the exception for THREAD_STOP_GRACE is settled as timed out and
    the process recycled around its thread, as on the event loop's path.
    """

    def __init__(self, process: WorkerProcess) -> None:
        super().__init__(name="steep-watchdog", daemon=True)
        self.process = process
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int, Deadline]] = []
        self._seq = itertools.count()
        self._stopped = False

    def arm(self, deadline: Deadline, seconds: float, stage: int = 0) -> None:
        at = time.monotonic() + seconds
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._seq), stage, deadline))
            if self._heap[0][3] is deadline:
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, stage, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if not deadline.live:
                    continue
                if stage == 0:
                    deadline.fired = True
                    if deadline.call.interrupt(JobTimeout):
                        heapq.heappush(
                            self._heap,
                            (at + executor.THREAD_STOP_GRACE, next(self._seq), 1, deadline),
                        )
                elif deadline.slot.settle_early(deadline.job_id):
                    # the thread ignores the exception (stuck in C code)
                    self.process.threadsafe(self.process._slot_stuck, deadline.job_id)
