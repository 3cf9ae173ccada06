"""The `[data]` table: scrub rules per table and column, tables to truncate, rows to keep."""

from __future__ import annotations

from typing import Any

from steep.settings import register_check


def check_table(value: Any) -> Any:
    return value


register_check("data", check_table)
