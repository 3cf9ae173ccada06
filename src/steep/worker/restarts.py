"""When the supervisor restarts a worker process, and when it gives up.

A process that dies after it became ready (connected, registered, fetching) and did
work (finished jobs), or that stayed ready for HEALTHY_AFTER seconds, is restarted at
once: a tree whose processes do work never gives up or slows down, however often they
are killed (the OOM killer, an operator). One that dies young without finishing a job
(a job that crashes its process, again and again) is restarted with an exponential
back-off: `restart_delay`, doubling up to `restart_delay_max`. Only a crash loop stops
the supervisor: `give_up_after`
processes of one slot in a row that died *before* they became ready (an import error
in a spawned process, a broken setting, a server that refuses them), since restarting
those can never do any work. `give_up_after = 0` restarts forever.

Each slot keeps its restarts of the last RESTART_WINDOW seconds, which the worker
process shows in its heartbeat record ("restarted 14 times in 10 min, last: SIGKILL").
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# A process ready this long has shown the slot works: the back-off starts again.
HEALTHY_AFTER = 1.0
# The span of the restart count a worker's heartbeat record shows.
RESTART_WINDOW = 600.0
# RSS samples kept per process, to tell a process that grew until it was killed.
RSS_SAMPLES = 20


def cause_of(code: int) -> str:
    """How a process ended, from its exit code: "SIGKILL", "exit 1"."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


@dataclass
class SlotHistory:
    """The restarts of one worker slot of a supervisor."""

    streak: int = 0  # deaths since the slot last ran healthy: the back-off's exponent
    unready: int = 0  # processes in a row that died before they became ready
    total: int = 0
    restarts: deque[tuple[float, str]] = field(default_factory=deque)  # (wall time, cause)
    kills: int = 0  # SIGKILLs in a row
    start_at: float | None = None  # monotonic time a waiting restart is due

    def died(self, code: int, ready_for: float | None, now: float, worked: bool = False) -> None:
        """Record a death; `ready_for`: how long the process had been ready (None: never);
        `worked`: it had finished jobs."""
        cause = cause_of(code)
        if ready_for is None:
            self.unready += 1
        else:
            self.unready = 0
            if worked or ready_for >= HEALTHY_AFTER:
                self.streak = 0
        self.streak += 1
        self.total += 1
        self.kills = self.kills + 1 if code == -signal.SIGKILL else 0
        self.restarts.append((now, cause))
        while self.restarts and self.restarts[0][0] < now - RESTART_WINDOW:
            self.restarts.popleft()

    def delay(self, first: float, cap: float) -> float:
        """Seconds before the next start: `first`, doubling with each death in a row."""
        if self.streak <= 1:
            return first if self.unready else 0.0
        return min(cap, first * 2 ** (self.streak - 2))

    def record(self) -> dict[str, Any]:
        """What the next process of the slot shows in its heartbeat record."""
        now = time.time()
        recent = [(at, cause) for at, cause in self.restarts if at >= now - RESTART_WINDOW]
        out: dict[str, Any] = {"count": len(recent), "window": RESTART_WINDOW, "total": self.total}
        if recent:
            out["last_at"], out["last_cause"] = recent[-1]
        return out


def rising(samples: deque[int] | list[int]) -> bool:
    """A process's RSS grew over its life: by a quarter at least, with few steps down."""
    if len(samples) < 4:
        return False
    values = list(samples)
    downs = sum(1 for a, b in itertools.pairwise(values) if b < a * 0.95)
    return values[-1] >= values[0] * 1.25 and downs <= (len(values) - 1) * 0.2
