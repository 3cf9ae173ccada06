"""Artifacts: a commit's tree, built once and promoted as is.

An artifact is the tar of the git tree a green run tested (`git archive`), stored under
the tree's id with its SHA-256 digest. Because it is keyed by the *tree*, a merge commit
on `main` whose tree is the one that passed staging is the same artifact: production
deploys exactly the bytes staging ran.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from steep.pipeline import git


def build(mirror: Path, sha: str, root: Path) -> tuple[str, Path, str]:
    """(tree, path, digest) of the artifact of `sha`, made if it does not exist yet."""
    tree = git.commit(mirror, sha).tree
    path = root / f"{tree}.tar"
    digest_file = path.with_suffix(".sha256")
    if path.is_file() and digest_file.is_file():
        return tree, path, digest_file.read_text().strip()
    root.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    git.run(["archive", "--format=tar", "-o", str(partial), tree], mirror)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    os.replace(partial, path)
    digest_file.write_text(digest + "\n")
    return tree, path, digest


def verify(path: Path, digest: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest
