"""The pipeline's own figures, on `steep pipeline server` with the embedded Valkey:

1. from `git push` into a local bare origin to the first line of the step's log as the
   dashboard serves it (its JSON API, which the run page polls), p50 and p90 over N
   pushes: by webhook (a signed GitHub push sent as the push returns, as a forge would)
   and by polling (`poll = 1`);
2. the pipeline's overhead per step: a step that runs `true`, from its job's start to
   its verdict (checkout of a fresh workspace included), and a run's whole time from
   its creation to its verdict;
3. 50 pushes to one branch in quick succession (webhooks): how many runs end not
   cancelled (the answer must be 1).

    python benchmarks/pipeline.py [--pushes 20]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
DEFINITION = """\
[pipeline]
[[pipeline.steps]]
name = "t"
run = "echo first line; true"
"""


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post_push(base: str, project: str, branch: str, sha: str) -> dict:
    body = json.dumps(
        {"ref": f"refs/heads/{branch}", "after": sha, "repository": {"full_name": "acme/shop"}}
    ).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{base}/pipeline/hooks/github/{project}",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"bench-{sha}",
            "X-Hub-Signature-256": signature,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def first_line(base: str, run_id: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            log = get(f"{base}/api/pipeline/runs/{run_id}/log?step=t")
            if "first line" in log.get("lines", []):
                return
        except urllib.error.HTTPError:
            pass  # the run has no plan yet
        time.sleep(0.005)
    raise TimeoutError(f"no log line of {run_id}")


def wait_final(base: str, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = get(f"{base}/api/pipeline/runs/{run_id}")
        if run["state"] in ("passed", "failed", "cancelled", "error"):
            return run
        time.sleep(0.02)
    raise TimeoutError(run_id)


def newest_run(base: str, project: str, after: set[str], deadline: float) -> str:
    while time.monotonic() < deadline:
        url = f"{base}/api/pipeline/runs?project={project}&branch=polled&limit=5"
        ids = [r["id"] for r in get(url)["runs"]]
        fresh = [i for i in ids if i not in after]
        if fresh:
            return fresh[0]
        time.sleep(0.005)
    raise TimeoutError("no new run")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="steep-pipeline-bench-"))
    origin, work = tmp / "origin.git", tmp / "work"
    git("init", "--bare", "--quiet", "--initial-branch=main", str(origin))
    git("clone", "--quiet", str(origin), str(work))
    git("checkout", "--quiet", "-B", "main", cwd=work)
    (work / "steep.toml").write_text(DEFINITION)
    git("add", "steep.toml", cwd=work)
    git("commit", "--quiet", "-m", "start", cwd=work)
    for branch in ("main", "polled", "storm"):
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp / "steep.toml").write_text(
        f'data_dir = "{tmp / "data"}"\n[pipeline]\nkeep_runs = 500\n'
        f'[pipeline.projects.hooked]\nrepo = "{origin}"\nforge = "github"\n'
        'webhook_secret_env = "BENCH_SECRET"\n'
        f'[pipeline.projects.polled]\nrepo = "{origin}"\npoll = 1\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEEP_")}
    env.update(BENCH_SECRET=SECRET, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen(
        [sys.executable, "-m", "steep", "pipeline", "server", "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{base}/api/pipeline/runs")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(2)  # the poller's first look records the heads
        hooked, polled, step_times, run_times = [], [], [], []
        seen: set[str] = set()
        for i in range(args.pushes):
            (work / "n.txt").write_text(str(i))
            git("add", "n.txt", cwd=work)
            git("commit", "--quiet", "-m", f"push {i}", cwd=work)
            sha = git("rev-parse", "HEAD", cwd=work)
            start = time.monotonic()
            git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
            run_id = post_push(base, "hooked", "main", sha)["run"]
            first_line(base, run_id, time.monotonic() + 60)
            hooked.append(time.monotonic() - start)
            run = wait_final(base, run_id)
            step = run["steps"][0]
            step_times.append(step["finished"] - step["started"])
            run_times.append(run["finished"] - run["created"])
            start = time.monotonic()
            git("push", "--quiet", "origin", "HEAD:refs/heads/polled", cwd=work)
            run_id = newest_run(base, "polled", seen, time.monotonic() + 60)
            seen.add(run_id)
            first_line(base, run_id, time.monotonic() + 60)
            polled.append(time.monotonic() - start)
            wait_final(base, run_id)
        storm = []
        for i in range(50):
            (work / "storm.txt").write_text(str(i))
            git("add", "storm.txt", cwd=work)
            git("commit", "--quiet", "-m", f"storm {i}", cwd=work)
            sha = git("rev-parse", "HEAD", cwd=work)
            git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/storm", cwd=work)
            storm.append(post_push(base, "hooked", "storm", sha)["run"])
        finals = [wait_final(base, run_id, timeout=120) for run_id in storm]
        kept = [r for r in finals if r["state"] != "cancelled"]
        print(f"pushes: {args.pushes} (each: commit, push, first log line, verdict)")
        for label, values in (("webhook", hooked), ("polling (poll = 1)", polled)):
            print(
                f"push -> first log line, {label}: p50 {statistics.median(values) * 1000:.0f} ms,"
                f" p90 {pct(values, 0.9) * 1000:.0f} ms"
            )
        step_p50, run_p50 = statistics.median(step_times), statistics.median(run_times)
        print(
            f"step running `true`, job start -> verdict: p50 {step_p50 * 1000:.0f} ms,"
            f" p90 {pct(step_times, 0.9) * 1000:.0f} ms"
        )
        print(f"run of one such step, created -> verdict: p50 {run_p50 * 1000:.0f} ms")
        print(
            f"50 pushes to one branch: {len(kept)} run(s) not cancelled "
            f"({kept[0]['id'] if kept else '-'} {kept[0]['state'] if kept else ''}),"
            f" {len(finals) - len(kept)} cancelled"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        sys.path.insert(0, str(ROOT / "src"))
        from steep import server as embedded
        from steep.settings import Settings

        embedded.stop_server(Settings(data_dir=tmp / "data"))


if __name__ == "__main__":
    main()
