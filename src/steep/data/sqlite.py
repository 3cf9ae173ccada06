"""A SQLite copy: the online backup API into a scratch file beside the target, scrubbed
there, then renamed over the target (one atomic rename: the target is either the old
file or the finished copy, never half of one)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steep.data.postgres import CopyError


def path_of(url: str) -> Path:
    # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy and Django write them
    return Path(url.removeprefix("sqlite:///"))


def copy(
    source: str,
    target: str,
    scrub_in: Callable[[str], Any],
    step: Callable[[str], None],
) -> Any:
    src, dst = path_of(source), path_of(target)
    if not src.is_file():
        raise CopyError(f"the source database {src} does not exist")
    scratch = dst.with_name(f"{dst.name}.steep-scratch")
    scratch.unlink(missing_ok=True)
    try:
        step("backup")
        reader = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        writer = sqlite3.connect(scratch)
        try:
            reader.backup(writer)
        except sqlite3.Error as exc:
            raise CopyError(f"the backup of {src} failed: {exc}") from None
        finally:
            reader.close()
            writer.close()
        step("scrub")
        report = scrub_in(f"sqlite:///{scratch}")
        step("swap")
        os.replace(scratch, dst)
        return report
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
