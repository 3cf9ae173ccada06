"""`steep pipeline demo`: the whole delivery flow on this machine, in about a minute.

It makes a sample web app's repository (its own tests, a `/health` endpoint, a page
that shows its version) with a bare origin, starts `steep pipeline server` (the CI
server and its workers, on an embedded Valkey of their own), and plays:

    1. staging and production deployed with v1 (two app processes on two ports)
    2. a feature branch, a pull request into staging (GitHub-format signed webhooks),
       its tests as steep jobs; merged: staging deploys v2 and checks it
    3. a pull request from staging into master, green: production gets the tree that
       passed staging
    4. a commit whose tests fail: nothing deploys
    5. a commit whose health check fails on staging: rolled back automatically

A client polls both apps every 10 ms throughout, so the summary says how many
requests failed during each deploy and rollback. Everything happens through real git,
real HTTP and real processes; nothing is simulated but the forge, whose webhooks the
demo sends itself (signed as GitHub signs them).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from steep.pipeline.demo_world import PROJECT, DemoFailed, World, get

__all__ = ["Demo", "DemoFailed", "play"]


@dataclass
class Event:
    what: str
    outcome: str
    seconds: float | None = None


class Demo(World):
    """The flow, step by step (benchmarks/deploy.py repeats steps to measure them)."""

    def __init__(self, root: Path, console: Console, *, ci_port: int = 0) -> None:
        super().__init__(root, console, ci_port=ci_port)
        self.events: list[Event] = []

    # -- the flow ---------------------------------------------------------------------

    def record(self, what: str, outcome: str, seconds: float | None = None) -> None:
        self.events.append(Event(what, outcome, seconds))
        took = f" ({seconds:.1f} s)" if seconds is not None else ""
        self.say(f"  [green]✓[/] {what}: {outcome}{took}")

    def expect(self, run: dict[str, Any], state: str, what: str) -> None:
        if run["state"] != state:
            raise DemoFailed(
                f"{what}: the run {run['id']} {run['state']}"
                f" ({run.get('reason') or 'no reason given'}), expected {state}:"
                f" see {self.url}/pipeline/runs/{run['id']}"
            )

    def bootstrap(self) -> None:
        """v1 on staging, then on production: the apps as they run today."""
        self.say("[bold]1. Today: v1 on staging and production[/]")
        sha, _ = self.push("staging", "The shop, v1")
        self.expect(self.wait_run("branch:staging", sha), "passed", "staging's first deploy")
        self.wait_answer("staging", "Shop v1 ", 0)
        sha, _ = self.push("master", "The shop, v1")
        self.expect(self.wait_run("branch:master", sha), "passed", "production's first deploy")
        self.wait_answer("production", "Shop v1 ", 0)
        self.record("staging and production", "both answer Shop v1")

    def release(self, version: int, feature: str) -> dict[str, float]:
        """A feature from branch to production: the seconds from each merge to the
        environment answering with the new version, and the requests failed meanwhile."""
        branch = f"feature/{feature}"
        self.git("checkout", "--quiet", "-b", branch, "staging")
        self.commit(
            f"{feature.replace('-', ' ').capitalize()} (v{version})", {"VERSION": f"{version}\n"}
        )
        self.push(branch, f"v{version}")
        number = self.pull_request(branch, "staging", f"{feature} (v{version})")
        head = self.git("rev-parse", branch)
        self.expect(self.wait_run(f"pr:{number}", head), "passed", f"pull request #{number}")
        self.record(f"pull request #{number} {branch} → staging", "tests passed on the merge")
        self.merge(branch, "staging", f"Merge pull request #{number} from {branch}")
        sha, merged = self.push("staging", f"Merge pull request #{number}")
        to_staging = self.wait_answer("staging", f"Shop v{version} ", merged)
        run = self.wait_run("branch:staging", sha)
        self.expect(run, "passed", "the staging deploy")
        failed, total = self.watchers["staging"].failed(merged, run["finished"])
        figures = {"to_staging": to_staging, "staging_failed": failed, "staging_requests": total}
        self.record(
            f"staging deploys v{version}",
            f"checked; {failed} of {total} requests failed meanwhile",
            to_staging,
        )
        number = self.pull_request("staging", "master", f"Release v{version}")
        self.expect(self.wait_run(f"pr:{number}", sha), "passed", f"pull request #{number}")
        self.record(f"pull request #{number} staging → master", "tests passed on the merge")
        self.merge("staging", "master", f"Merge pull request #{number} from staging")
        sha, merged = self.push("master", f"Merge pull request #{number}")
        to_production = self.wait_answer("production", f"Shop v{version} ", merged)
        run = self.wait_run("branch:master", sha)
        self.expect(run, "passed", "the production deploy")
        failed, total = self.watchers["production"].failed(merged, run["finished"])
        figures.update(to_production=to_production, production_failed=failed)
        figures["production_requests"] = total
        production = self.history("production")[0]
        staging = next(d for d in self.history("staging") if d["tree"] == production["tree"])
        self.record(
            f"production deploys v{version}",
            f"tree {production['tree'][:12]}, the one staging checked in {staging['id']};"
            f" {failed} of {total} requests failed meanwhile",
            to_production,
        )
        return figures

    def failing_tests(self) -> None:
        self.say("[bold]4. A commit whose tests fail[/]")
        self.git("checkout", "--quiet", "staging")
        before = self.history("staging")[0]["id"]
        text = (self.work / "app.py").read_text().replace("rate: float = 0.2", "rate: float = 0.25")
        self.commit("Tax at 25 %", {"app.py": text})
        sha, _ = self.push("staging", "Tax at 25 %")
        run = self.wait_run("branch:staging", sha)
        self.expect(run, "failed", "the commit with failing tests")
        if self.history("staging")[0]["id"] != before:
            raise DemoFailed("a commit whose tests failed was deployed")
        self.record("tests fail on staging", f"{run.get('reason')}; nothing deployed")

    def failing_health(self, version: int, fix: dict[str, str | None]) -> dict[str, float]:
        """A release whose health check fails on staging, rolled back; the seconds from
        the failed check to the old release answering, and the requests failed."""
        self.git("checkout", "--quiet", "staging")
        self.commit(
            f"v{version}, with a broken configuration",
            {**fix, "VERSION": f"{version}\n", "BROKEN": "the database URL is wrong\n"},
        )
        sha, pushed = self.push("staging", f"v{version}")
        run = self.wait_run("branch:staging", sha)
        self.expect(run, "failed", "the commit whose health check fails")
        deploy = self.history("staging")[0]
        if deploy["state"] != "rolled_back":
            raise DemoFailed(f"the broken release ended {deploy['state']}, not rolled back")
        reverting = next(p["at"] for p in deploy["phases"] if p["name"] == "reverting")
        watcher = self.watchers["staging"]
        back = self.wait_answer("staging", f"Shop v{version - 1} ", reverting)
        failed, total = watcher.failed(pushed, run["finished"])
        self.record(
            f"staging's health check fails on v{version}",
            f"rolled back to {deploy['rolled_back_to']} in {back:.2f} s from the failed check;"
            f" {failed} of {total} requests failed meanwhile",
        )
        return {"rollback": back, "failed": failed, "requests": total}

    def summary(self) -> Table:
        table = Table(title="What happened", title_justify="left")
        table.add_column("step")
        table.add_column("outcome")
        table.add_column("seconds", justify="right")
        for e in self.events:
            table.add_row(e.what, e.outcome, f"{e.seconds:.1f}" if e.seconds is not None else "")
        return table


def play(
    console: Console, *, keep: bool = False, where: Path | None = None, wait: bool = False
) -> int:
    root = Path(tempfile.mkdtemp(prefix="steep-demo-", dir=where))
    demo = Demo(root, console)
    try:
        with demo.running():
            console.print(f"[bold]The delivery pipeline[/] (in {root})")
            demo.make_repository()
            demo.start_server()
            console.print(
                f"CI server on {demo.url}/pipeline (webhooks at /pipeline/hooks/github/{PROJECT});"
                f" staging on :{demo.staging_port}, production on :{demo.production_port}"
            )
            for watcher in demo.watchers.values():
                watcher.start()
            demo.bootstrap()
            demo.say("[bold]2. and 3. A feature, from a branch to production[/]")
            demo.release(2, "free-shipping")
            demo.failing_tests()
            demo.say("[bold]5. A commit whose health check fails on staging[/]")
            app = (
                (demo.work / "app.py")
                .read_text()
                .replace("rate: float = 0.25", "rate: float = 0.2")
            )
            demo.failing_health(3, {"app.py": app})
            console.print(demo.summary())
            for env, port in (("staging", demo.staging_port), ("production", demo.production_port)):
                status, body = get(f"http://127.0.0.1:{port}/")
                console.print(f"{env:<10} http://127.0.0.1:{port}/ answers {status}: {body}")
            console.print(f"The runs and deploys: {demo.url}/pipeline/projects/{PROJECT}")
            if wait and sys.stdin.isatty():
                with contextlib.suppress(EOFError, KeyboardInterrupt):
                    input("The CI server and both apps stay up until you press Enter. ")
        return 0
    except DemoFailed as exc:
        console.print(f"[red]The demo failed:[/] {exc}")
        keep = True
        return 1
    finally:
        if keep:
            console.print(f"Kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
