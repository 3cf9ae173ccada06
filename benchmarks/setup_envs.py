"""Create one isolated virtual environment per benchmarked system.

    python benchmarks/setup_envs.py [ENV ...] [--force]

Each environment lives in ``benchmarks/.envs/<env>`` (gitignored) and is built from the
pinned ``benchmarks/requirements/<env>.txt``, so the peers' dependency pins never meet. The
``harness`` environment runs ``benchmarks/run.py`` itself; the ``steep`` environment installs
this repository editable on top of its pins. An environment is rebuilt only when its
requirements file (or, for steep, ``pyproject.toml``) changed since it was built.

Only the standard library is used here: this script must run before any env exists.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
ENVS_DIR = BENCH_DIR / ".envs"
REQ_DIR = BENCH_DIR / "requirements"
STAMP = ".bench-stamp"
PIP_TIMEOUT_S = 900


def all_envs() -> list[str]:
    return sorted(p.stem for p in REQ_DIR.glob("*.txt"))


def env_dir(env: str) -> Path:
    return ENVS_DIR / env


def env_python(env: str) -> Path:
    return env_dir(env) / "bin" / "python"


def env_bin(env: str, name: str) -> Path:
    return env_dir(env) / "bin" / name


def _fingerprint(env: str) -> str:
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update((REQ_DIR / f"{env}.txt").read_bytes())
    if env == "steep":
        h.update((REPO_ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()


def is_current(env: str) -> bool:
    stamp = env_dir(env) / STAMP
    return (
        env_python(env).exists()
        and stamp.exists()
        and stamp.read_text().strip() == _fingerprint(env)
    )


def build(env: str, *, force: bool = False, quiet: bool = False) -> None:
    """Build ``env`` unless it is already current (or ``force``); raise on failure."""
    req = REQ_DIR / f"{env}.txt"
    if not req.exists():
        raise SystemExit(f"no requirements file {req}")
    if not force and is_current(env):
        return
    target = env_dir(env)
    if target.exists():
        shutil.rmtree(target)
    print(f"[setup_envs] building {target} from {req.name}", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    cmd = [str(env_python(env)), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        cmd.append("-q")
    cmd += ["-r", str(req)]
    if env == "steep":
        cmd += ["-e", str(REPO_ROOT)]
    subprocess.run(cmd, check=True, timeout=PIP_TIMEOUT_S)
    (target / STAMP).write_text(_fingerprint(env) + "\n")


def ensure(envs: list[str], *, quiet: bool = True) -> dict[str, str]:
    """Build what is missing; return {env: error} for envs that could not be built."""
    errors: dict[str, str] = {}
    for env in envs:
        try:
            build(env, quiet=quiet)
        except (subprocess.SubprocessError, OSError, SystemExit) as exc:
            errors[env] = f"{type(exc).__name__}: {exc}"
            print(f"[setup_envs] {env} failed: {errors[env]}", file=sys.stderr, flush=True)
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("envs", nargs="*", help=f"default: all ({', '.join(all_envs())})")
    ap.add_argument("--force", action="store_true", help="rebuild even if current")
    args = ap.parse_args()
    envs = args.envs or all_envs()
    failed = []
    for env in envs:
        try:
            build(env, force=args.force)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"[setup_envs] {env} failed: {exc}", file=sys.stderr)
            failed.append(env)
    for env in envs:
        state = "FAILED" if env in failed else "ok"
        print(f"{env:10s} {state:7s} {env_dir(env)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
