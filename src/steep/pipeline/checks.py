"""Health and sanity checks against a deployed environment: HTTP requests with an
expected status and text, retried, and commands run with the environment's URL."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steep.pipeline import runner
from steep.pipeline.environments import Check, Environment


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    passed: bool
    detail: str
    seconds: float


def http_once(url: str, timeout: float) -> tuple[int | None, str, str]:
    """(status, body, error) of one GET."""
    request = urllib.request.Request(url, headers={"User-Agent": "steep-pipeline-check"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(65536).decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(65536).decode("utf-8", "replace"), ""
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return None, "", str(getattr(exc, "reason", exc))


def health(env: Environment, say: Callable[[str], None]) -> Result:
    """Poll the health URL until it answers 2xx, for at most `health_timeout` seconds."""
    assert env.health is not None
    url = env.absolute(env.health)
    start = time.monotonic()
    if env.health_grace:
        time.sleep(env.health_grace)
    last = ""
    while True:
        status, _, error = http_once(url, timeout=5)
        if status is not None and 200 <= status < 300:
            return Result(f"health {url}", True, f"{status}", time.monotonic() - start)
        last = f"answered {status}" if status is not None else f"unreachable: {error}"
        if time.monotonic() - start > env.health_timeout:
            say(f"health check {url}: {last}")
            return Result(
                f"health {url}",
                False,
                f"{last} for {env.health_timeout:g} s",
                time.monotonic() - start,
            )
        time.sleep(0.2)


def run_check(
    check: Check,
    env: Environment,
    cwd: Path,
    environ: dict[str, str],
    on_line: Callable[[str], None],
) -> Result:
    start = time.monotonic()
    if check.http is not None:
        url = env.absolute(check.http)
        detail = ""
        for _ in range(check.retries + 1):
            status, body, error = http_once(url, check.timeout)
            if status != check.expect_status:
                detail = f"expected {check.expect_status}, got " + (
                    str(status) if status is not None else f"no answer ({error})"
                )
            elif check.expect_text is not None and check.expect_text not in body:
                detail = f"the page does not contain {check.expect_text!r}"
            else:
                return Result(check.label, True, f"{status}", time.monotonic() - start)
            time.sleep(0.5)
        return Result(check.label, False, detail, time.monotonic() - start)
    assert check.run is not None
    outcome = runner.run(check.run, cwd, environ, check.timeout, on_line, lambda: None)
    if outcome.exit_code == 0:
        return Result(check.label, True, "exit code 0", time.monotonic() - start)
    detail = outcome.reason or f"exit code {outcome.exit_code}"
    return Result(check.label, False, detail, time.monotonic() - start)
