"""Long-running jobs: progress reports, a cooperative cancel check, and an
iterable walk that resumes from its cursor after a crash, a deploy or an interrupt."""

from __future__ import annotations

from dataclasses import dataclass

from steep import current_job, job

ROWS = list(range(1, 2001))  # stands in for a large table


@job(result_ttl=600)
def import_rows(count: int) -> int:
    ctx = current_job()
    assert ctx is not None
    done = 0
    for start in range(0, count, 100):
        ctx.check_cancelled()  # an operator's cancel ends the job here, cleanly
        done += len(range(start, min(start + 100, count)))
        ctx.progress(done / count, f"{done} of {count} rows")
    return done


@dataclass
class Position:
    row: int = 0  # the next row to read
    total: int = 0  # what the rows before it added up to


@job(iterable=True, result_ttl=600)
def sum_of_squares(batch: int, cursor: Position | None = None):  # type: ignore[no-untyped-def]
    """One batch per step; the cursor carries the running total, so a resumed walk
    neither loses nor double-counts a batch."""
    ctx = current_job()
    position = cursor or Position()
    while position.row < len(ROWS):
        chunk = ROWS[position.row : position.row + batch]
        position = Position(position.row + len(chunk), position.total + sum(r * r for r in chunk))
        if ctx is not None:
            ctx.progress(position.row / len(ROWS), "summing")
        yield position  # saved before the next step starts
    return position.total
