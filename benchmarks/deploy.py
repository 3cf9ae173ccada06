"""The delivery pipeline's figures, on the flow of `steep pipeline demo` (real git, the
real `steep pipeline server` on an embedded Valkey, two real app processes served by
the sample app's zero-downtime `serve.py`, a client polling each app every 10 ms):

1. from the merge into `staging` (the push, and its signed webhook) to staging
   answering with the new version, and from the merge into `master` to production
   answering, p50 (and min, max) over N releases;
2. the requests the polling client saw fail during those deploys;
3. an automatic rollback: from the failed health check (the deploy's `reverting`
   phase) to the old release answering, and the requests failed meanwhile, over N
   broken releases;
4. a rollback by hand (`steep pipeline rollback shop production`): from the command to
   the old release answering, and the requests failed meanwhile.

    python benchmarks/deploy.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from steep.pipeline.demo import Demo


def spread(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f},"
        f" n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="steep-bench-deploy-") as where:
        demo = Demo(Path(where), console)
        with demo.running():
            demo.make_repository()
            demo.start_server()
            for watcher in demo.watchers.values():
                watcher.start()
            demo.bootstrap()
            releases = []
            version = 1
            for _ in range(args.rounds):
                version += 1
                releases.append(demo.release(version, f"change-{version}"))
            in_production = version
            rollbacks = []
            for _ in range(args.rounds):
                version += 1
                rollbacks.append(demo.failing_health(version, {}))
                # the next broken release starts from a healthy staging again
                version += 1
                demo.commit(f"v{version}: fixed", {"BROKEN": None, "VERSION": f"{version}\n"})
                sha, _ = demo.push("staging", f"v{version}")
                demo.expect(demo.wait_run("branch:staging", sha), "passed", "the fixed release")
            # a rollback by hand, of production, to the release before
            live = demo.history("production")[0]
            asked = time.time()
            result = demo.cli("rollback", "shop", "production")
            back_to = result.get("release") or "?"
            answered = demo.wait_answer("production", f"Shop v{in_production - 1} ", asked)
            done = time.time()
            manual_failed, manual_total = demo.watchers["production"].failed(asked, done)
    print(f"rounds: {args.rounds} (python benchmarks/deploy.py --rounds {args.rounds})")
    print("merge into staging -> staging answers the new version:")
    print("  " + spread([r["to_staging"] for r in releases]))
    print("merge into master -> production answers the new version:")
    print("  " + spread([r["to_production"] for r in releases]))
    failed = sum(r["staging_failed"] + r["production_failed"] for r in releases)
    total = sum(r["staging_requests"] + r["production_requests"] for r in releases)
    print(f"requests failed during {2 * len(releases)} deploys: {failed} of {total}")
    print("automatic rollback, failed health check -> old release answering:")
    print("  " + spread([r["rollback"] for r in rollbacks]))
    failed = sum(int(r["failed"]) for r in rollbacks)
    total = sum(int(r["requests"]) for r in rollbacks)
    print(
        f"requests failed during {len(rollbacks)} broken deploys and their rollbacks:"
        f" {failed} of {total}"
    )
    print(
        f"rollback by hand of production ({live['release']} -> {back_to}):"
        f" {done - asked:.2f} s for the command, first answer after {answered:.2f} s;"
        f" {manual_failed} of {manual_total} requests failed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
