"""Retry policy: exponential backoff with jitter, and what a failure records."""

from __future__ import annotations

import random
import traceback
from typing import Any

# Jitter spreads the retries of many jobs that failed together (a dead
# database, say) so they do not all come back in the same second.
JITTER = 0.25


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry number `attempt` (1 = first retry): base·2^(attempt-1) ± 25%."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return max(0.0, delay * random.uniform(1 - JITTER, 1 + JITTER))


def error_record(exc: BaseException, attempt: int, reason: str = "") -> dict[str, Any]:
    """The error stored with a failed job: class, message, traceback, attempt number."""
    kind = type(exc)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "attempt": attempt,
        "reason": reason,
    }


def reason_record(reason: str, message: str, attempt: int) -> dict[str, Any]:
    """An error for a job that could not even start (unknown name, bad payload...)."""
    return {
        "type": "steep." + reason,
        "message": message,
        "traceback": "",
        "attempt": attempt,
        "reason": reason,
    }
