"""A deploy, phase by phase, each recorded as it completes, so a deploy whose worker
died is resumed from its record, never guessed.

    releases:  starting → updating (unpack releases/<id>) → linking (shared/) →
               releasing (the release hook: migrations; a failure switches nothing) →
               publishing (`current` switched atomically) → restarting → checking
               (health, then sanity checks) → finished
    rollback:  reverting (`current` back to the previous release) → restarting →
               checking (health) → rolled back
    command:   starting → updating (unpack, for the command) → deploying (the user's
               command) → checking → finished

`current` is a symbolic link replaced by rename(2), so at any instant it names the old
release or the new one, whole. A resumed deploy reads where it points to know which.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from steep.pipeline import checks, hosts, runner
from steep.pipeline.deploys import CheckResult, Deploy, Phase, history, save, set_state
from steep.pipeline.environments import Environment
from steep.pipeline.hosts import DeployFailed

__all__ = ["DeployFailed", "Deployment", "record_live", "release_id"]


def release_id(sha: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{sha[:12]}"


class Deployment:
    """Carries out one deploy of one artifact to one environment, on its target: this
    machine, or its host over SSH (steep.pipeline.hosts)."""

    def __init__(
        self,
        deploy: Deploy,
        env: Environment,
        artifact: Path,
        environ: dict[str, str],
        say: Callable[[str], None],
        on_line: Callable[[str], None],
        target: hosts.Target | None = None,
    ) -> None:
        self.deploy, self.env, self.artifact = deploy, env, artifact
        self.environ = {**environ, **env.variables()}
        if env.path:
            self.environ["STEEP_DEPLOY_PATH"] = env.path
        # the deploy's own variables, for its commands wherever they run (a host gets
        # these, never the CI machine's PATH or HOME)
        self.variables = {
            k: v for k, v in self.environ.items() if k not in runner.KEPT_VARIABLES or k in env.env
        }
        self.say, self.on_line = say, on_line
        self.target = target or hosts.ThisMachine(env.path or ".")

    # -- the record -----------------------------------------------------------------

    def phase(self, name: str, note: str = "") -> None:
        self.deploy.phases.append(Phase(name=name, at=time.time(), note=note))
        save(self.deploy)
        self.say(f"{name}{': ' + note if note else ''}")

    def restart(self) -> None:
        assert self.env.restart is not None
        self._run("restart", self.env.restart, self.current)

    def _run(self, label: str, script: str, cwd: str | Path, timeout: float = 900.0) -> None:
        on = "" if isinstance(self.target, hosts.ThisMachine) else f" (on {self.target.where})"
        self.say(f"{label}{on}: {script}")
        outcome = self.target.run(script, str(cwd), self.variables, timeout, self.on_line)
        if outcome.exit_code != 0:
            why = outcome.reason or f"exit code {outcome.exit_code}"
            raise DeployFailed(f"the {label} command failed ({why})")

    # -- releases -------------------------------------------------------------------

    @property
    def current(self) -> str:
        return self.target.path("current")

    def current_release(self) -> str | None:
        return self.target.current_release()

    def unpack(self, into: str | Path) -> None:
        self.target.unpack(self.artifact, str(into))

    def link_shared(self, release: str) -> None:
        self.target.link_shared(release, self.env.shared)

    def switch(self, release: str) -> None:
        """Point `current` at releases/<release>, atomically."""
        self.target.switch(release)

    def prune(self) -> list[str]:
        """Keep the newest `keep` releases, and always `current` and the rollback target."""
        keep = {self.current_release(), self.deploy.previous}
        names = sorted(self.target.releases(), reverse=True)
        gone = [n for n in names[self.env.keep :] if n not in keep and not n.endswith(".partial")]
        self.target.remove_releases(gone)
        return gone

    @contextlib.contextmanager
    def _checks_dir(self) -> Iterator[Path]:
        """Where `run` checks run, on this machine: the release, or for a host, a copy of
        the artifact unpacked for them."""
        here = self.target.local_dir()
        if here is not None:
            yield here
            return
        with tempfile.TemporaryDirectory(prefix="steep-checks-") as folder:
            copy = Path(folder) / "release"
            if self.artifact.is_file():
                hosts.unpack_here(self.artifact, copy)
            else:
                copy.mkdir()
            yield copy

    def check_all(self) -> bool:
        results: list[checks.Result] = []
        if self.env.health:
            results.append(checks.health(self.env, self.say))
        if all(r.passed for r in results) and self.env.checks:
            with self._checks_dir() as cwd:
                for check in self.env.checks:
                    results.append(
                        checks.run_check(check, self.env, cwd, self.environ, self.on_line)
                    )
                    if not results[-1].passed:
                        break
        self.deploy.checks = [
            CheckResult(check=r.check, passed=r.passed, detail=r.detail, seconds=r.seconds)
            for r in results
        ]
        for r in results:
            self.say(f"check {r.check}: {'passed' if r.passed else 'FAILED: ' + r.detail}")
        return all(r.passed for r in results)

    def run_releases(self) -> str:
        """The releases strategy; the deploy's final state."""
        d = self.deploy
        self.target.prepare()
        if not d.done("starting"):
            d.previous = self.current_release()
            d.release = release_id(d.sha)
            self.phase("starting", f"release {d.release}, now {d.previous or 'none'}")
        assert d.release is not None
        release = self.target.path("releases", d.release)
        if not d.done("publishing") or self.current_release() != d.release:
            if not d.done("linking"):
                self.unpack(release)
                self.phase("updating", f"unpacked {d.tree[:12]} into {release}")
                self.link_shared(release)
                self.phase("linking", ", ".join(self.env.shared) or "nothing shared")
            if self.env.release and not d.done("releasing"):
                self._run("release", self.env.release, release)
                self.phase("releasing")
            self.switch(d.release)
            self.phase("publishing", f"current -> releases/{d.release}")
        if self.env.restart and not d.done("restarting"):
            self._run("restart", self.env.restart, self.current)
            self.phase("restarting")
        if self.check_all():
            self.phase("finished")
            self.prune()
            return "succeeded"
        return self.rollback("the checks failed")

    def rollback(self, why: str) -> str:
        d = self.deploy
        if d.previous is None:
            d.reason = f"{why}; no earlier release to roll back to"
            self.say(d.reason)
            return "failed"
        self.phase("reverting", f"{why}: back to {d.previous}")
        self.switch(d.previous)
        if self.env.restart:
            try:
                self._run("restart", self.env.restart, self.current)
            except DeployFailed as exc:
                d.reason = f"{why}; rolled back to {d.previous}, but {exc}"
                return "rolled_back"
        healthy = checks.health(self.env, self.say).passed if self.env.health else True
        d.rolled_back_to = d.previous
        d.reason = f"{why}; rolled back to {d.previous}" + (
            "" if healthy else " (not healthy either)"
        )
        self.phase("rolled back", d.previous)
        return "rolled_back"

    # -- command --------------------------------------------------------------------

    def run_command(self, workdir: Path) -> str:
        d = self.deploy
        assert self.env.command is not None
        if not d.done("starting"):
            self.phase("starting")
        if not d.done("updating"):
            shutil.rmtree(workdir, ignore_errors=True)
            self.unpack(workdir)
            self.phase("updating", f"unpacked {d.tree[:12]} into {workdir}")
        given = {"STEEP_ARTIFACT": str(self.artifact), "STEEP_ARTIFACT_DIR": str(workdir)}
        self.environ.update(given)
        self.variables.update(given)
        if not d.done("deploying"):
            self._run("deploy", self.env.command, workdir)
            self.phase("deploying")
        if self.check_all():
            self.phase("finished")
            return "succeeded"
        d.reason = "the checks failed (the command strategy cannot roll back by itself)"
        return "failed"


def record_live(deploy: Deploy) -> None:
    """What the environment runs after `deploy`: its release, the one it rolled back to,
    or (when it failed before switching) what ran before."""
    live: Deploy | None = deploy if deploy.state == "succeeded" else None
    if deploy.state == "rolled_back":
        live = next(
            (
                d
                for d in history(deploy.project, deploy.env, 200)
                if d.release == deploy.rolled_back_to
            ),
            None,
        )
    fields: dict[str, str | None] = {"deploy": deploy.id, "state": deploy.state}
    if live is not None:
        fields.update(
            live_deploy=live.id,
            release=live.release,
            sha=live.sha,
            tree=live.tree,
            digest=live.digest,
            deployed_at=repr(live.finished_at or time.time()),
        )
    set_state(deploy.project, deploy.env, **fields)
