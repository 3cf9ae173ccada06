"""The build cache: directories kept between builds of a project on one machine,
keyed by the digest of the files the definition names (a lock file).

A step restores the cache entry of its key before its command runs and, when the
command passed and no entry exists for the key yet, saves its directories as that
entry. An entry is written to a temporary name and renamed, so a step killed while
saving never leaves half an entry behind; the newest few entries per project are kept.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from steep.pipeline.definition import Cache

KEEP = 5


def key_of(cache: Cache, workspace: Path) -> str:
    digest = hashlib.sha256()
    for name in cache.key:
        digest.update(name.encode() + b"\0")
        path = workspace / name
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
        digest.update(b"\0")
    digest.update("\0".join(cache.paths).encode())
    return digest.hexdigest()[:24]


def restore(cache: Cache, root: Path, workspace: Path) -> str | None:
    """Copy the entry for this workspace's key into it; the key if there was one."""
    key = key_of(cache, workspace)
    entry = root / key
    if not entry.is_dir():
        return None
    for name in cache.paths:
        source = entry / name
        if source.exists():
            target = workspace / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, symlinks=True)
    entry.touch()
    return key


def save(cache: Cache, root: Path, workspace: Path) -> str | None:
    """Keep this workspace's cached directories under its key, unless an entry exists."""
    key = key_of(cache, workspace)
    entry = root / key
    if entry.is_dir():
        return None
    partial = root / f".{key}.{time.time_ns()}"
    partial.mkdir(parents=True)
    try:
        for name in cache.paths:
            source = workspace / name
            if source.exists():
                target = partial / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(source, target, symlinks=True)
        partial.rename(entry)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not entry.is_dir():
            raise
        return None  # another step saved the same key first
    _prune(root)
    return key


def _prune(root: Path) -> None:
    entries = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
