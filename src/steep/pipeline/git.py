"""Every git command the pipeline runs: argv lists built here, run through `run()`.

A project's remote is mirrored once per machine (`git clone --mirror`, then
`git fetch --prune`), under a file lock so parallel steps share it; each step checks
out its commit into a fresh workspace that borrows the mirror's objects
(`git clone --shared`). A pull request is tested as GitHub's merge ref would be: the
merge of its head into its base, made with `git merge-tree` and `git commit-tree`
with a fixed author and date, so every machine that makes it gets the same commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from steep.settings import redacted_url

TIMEOUT = 600.0
DISK_FULL = ("No space left on device", "Out of diskspace", "Disk quota exceeded")
# A merge commit's fixed identity: the same tree and parents give the same sha anywhere.
MERGE_ENV = {
    "GIT_AUTHOR_NAME": "steep",
    "GIT_AUTHOR_EMAIL": "steep@localhost",
    "GIT_AUTHOR_DATE": "1970-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "steep",
    "GIT_COMMITTER_EMAIL": "steep@localhost",
    "GIT_COMMITTER_DATE": "1970-01-01T00:00:00Z",
}


class GitError(Exception):
    """A git command failed; the message is git's own last words, with URLs' passwords
    hidden."""


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    author: str
    message: str
    tree: str


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # never wait for a password or a host key prompt: fail with git's message instead
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env.update(extra or {})
    return env


def run(
    args: Sequence[str],
    cwd: Path | None = None,
    *,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
    ok: Sequence[int] = (0,),
) -> subprocess.CompletedProcess[str]:
    argv = ["git", *args]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise GitError("git is not installed on this machine (the pipeline needs it)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish in {timeout:g} s") from None
    except OSError as exc:
        raise GitError(f"git {args[0]}: {exc.strerror or exc}") from None
    if done.returncode not in ok:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        said = lines[-1].strip() if lines else f"exit code {done.returncode}"
        for line in lines:
            if any(words in line for words in DISK_FULL):
                said = line.strip()
        raise GitError(f"git {args[0]} failed: {redacted_url(said)}")
    return done


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mirror(repo: str, path: Path) -> Path:
    """Bring the machine's mirror of `repo` at `path` up to date (cloning it the first time)."""
    with _locked(path.with_name(path.name + ".lock")):
        if (path / "HEAD").is_file():
            run(["remote", "set-url", "origin", repo], path)
            run(["fetch", "--prune", "--quiet", "origin"], path)
        else:
            partial = path.with_name(path.name + ".partial")
            if partial.exists():
                import shutil

                shutil.rmtree(partial)
            run(["clone", "--mirror", "--quiet", repo, str(partial)])
            partial.rename(path)
    return path


def ls_remote(repo: str, timeout: float = 60.0) -> dict[str, str]:
    """The remote's branches: name -> sha."""
    out = run(["ls-remote", "--heads", repo], timeout=timeout).stdout
    heads: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha
    return heads


def default_branch(repo: str, timeout: float = 60.0) -> str:
    """The branch the remote's HEAD points at (main, master...)."""
    out = run(["ls-remote", "--symref", repo, "HEAD"], timeout=timeout).stdout
    for line in out.splitlines():
        if line.startswith("ref: refs/heads/"):
            return line.split()[1].removeprefix("refs/heads/")
    raise GitError("the remote has no default branch (is it empty?)")


def resolve(mirror_path: Path, ref: str) -> str | None:
    """The commit `ref` names in the mirror (a branch, a tag, a sha), or None."""
    for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        done = run(
            ["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], mirror_path, ok=(0, 1)
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def commit(mirror_path: Path, sha: str) -> Commit:
    out = run(["log", "-1", "--format=%H%x00%an <%ae>%x00%s%x00%T", sha], mirror_path).stdout
    full, author, message, tree = out.rstrip("\n").split("\x00")
    return Commit(sha=full, author=author, message=message, tree=tree)


def show(mirror_path: Path, sha: str, path: str) -> str | None:
    """The text of `path` at commit `sha`, or None if the commit has no such file."""
    done = run(["cat-file", "-p", f"{sha}:{path}"], mirror_path, ok=(0, 128))
    return done.stdout if done.returncode == 0 else None


class MergeConflict(Exception):
    def __init__(self, files: list[str]) -> None:
        super().__init__(", ".join(files))
        self.files = files


def merge(
    mirror_path: Path,
    base: str,
    head: str,
    *,
    message: str | None = None,
    identity: dict[str, str] | None = None,
) -> str:
    """The commit merging `head` into `base` (what a pull request would become), by
    default with the fixed identity of MERGE_ENV; raises MergeConflict."""
    done = run(
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", base, head],
        mirror_path,
        ok=(0, 1),
    )
    lines = done.stdout.splitlines()
    if done.returncode == 1:
        raise MergeConflict([line for line in lines[1:] if line.strip()] or ["(unknown files)"])
    tree = lines[0].strip()
    message = message or f"Merge {head} into {base}"
    return run(
        ["commit-tree", tree, "-p", base, "-p", head, "-m", message],
        mirror_path,
        env=identity or MERGE_ENV,
    ).stdout.strip()


def branch_head(mirror_path: Path, branch: str) -> str | None:
    """The commit branch `branch` points at in the mirror (a branch only), or None."""
    done = run(
        ["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"],
        mirror_path,
        ok=(0, 1),
    )
    return done.stdout.strip() if done.returncode == 0 else None


def is_ancestor(mirror_path: Path, ancestor: str, descendant: str) -> bool:
    done = run(["merge-base", "--is-ancestor", ancestor, descendant], mirror_path, ok=(0, 1))
    return done.returncode == 0


def push(mirror_path: Path, repo: str, sha: str, ref: str, *, expect: str | None = None) -> None:
    """Set `ref` on the remote `repo` to `sha`, pushed from the mirror (to the URL, not to
    the mirror's remote: a mirror's remote would push every ref). With `expect`, only if
    the remote's ref is still at `expect`: the remote checks that under its ref lock, so
    a ref moved meanwhile refuses the push and nothing moves."""
    if expect is None:
        args = ["push", "--quiet", repo, f"+{sha}:{ref}"]
    else:
        args = ["push", "--quiet", f"--force-with-lease={ref}:{expect}", repo, f"{sha}:{ref}"]
    run(args, mirror_path, timeout=120.0)


def delete_remote_ref(mirror_path: Path, repo: str, ref: str) -> None:
    run(["push", "--quiet", repo, f":{ref}"], mirror_path, timeout=120.0)


def checkout(mirror_path: Path, sha: str, workspace: Path) -> None:
    """A fresh working tree of `sha` at `workspace` (which must not exist)."""
    run(["clone", "--shared", "--no-checkout", "--quiet", str(mirror_path), str(workspace)])
    run(["checkout", "--quiet", "--detach", sha], workspace)
