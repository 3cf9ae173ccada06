"""What the operator commands share: errors of the operations layer (steep.ops) as one
line, and ages, times and progress as people read them.

Importing it loads steep.ops, which is why the commands that run steep (worker, server,
enqueue) do not.
"""

from __future__ import annotations

import time
from typing import Any

from steep import ops
from steep.cli._common import _fail
from steep.ops.humanize import duration

_age = duration


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    delta = ts - time.time()
    return f"in {_age(delta)}" if delta > 0 else f"{_age(-delta)} ago"


def _run(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except ops.OpsError as exc:
        _fail(str(exc))


def _progress(report: dict[str, Any] | None) -> str:
    if not report:
        return "-"
    text = f"{report.get('fraction', 0) * 100:.0f}%"
    return f"{text} {report['message']}" if report.get("message") else text
