"""Numbers as people read them, shared by the CLI and the dashboard."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """`850 ms`, `12.5 s`, `14 min`, `3.2 h`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
