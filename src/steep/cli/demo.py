"""`steep demo`: a guided first run on the embedded server.

Starts a worker, enqueues a mix of sample jobs (fast, slow, async,
failing-then-retrying, scheduled, and one that fails for good), shows
progress, and ends with a summary table.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from steep import Job, JobStatus, current_job, job
from steep.settings import get_settings

QUEUE = "demo"


@job(queue=QUEUE, result_ttl=600)
def square(n: int) -> int:
    """A fast job."""
    return n * n


@job(queue=QUEUE, result_ttl=600)
def render_report(seconds: float) -> str:
    """A slow job (runs in a worker thread)."""
    time.sleep(seconds)
    return f"report rendered in {seconds:.1f} s"


@job(queue=QUEUE, result_ttl=600)
async def fetch_page(page: int) -> dict[str, int]:
    """An async job (runs on the worker's event loop)."""
    await asyncio.sleep(0.2)
    return {"page": page, "items": page * 10}


@job(queue=QUEUE, result_ttl=600, retries=3, backoff=0.5)
def flaky_webhook(target: str) -> str:
    """Fails on its first attempt, then succeeds on a retry."""
    ctx = current_job()
    if ctx is not None and ctx.attempt == 1:
        raise ConnectionError(f"{target} did not answer (simulated)")
    return f"delivered to {target} on attempt {ctx.attempt if ctx else 1}"


@job(queue=QUEUE, result_ttl=600, retries=0)
def broken_import(path: str) -> None:
    """Fails for good: ends in the dead set, where an operator can inspect and retry it."""
    raise ValueError(f"{path}: line 3: expected 4 columns, found 3 (simulated)")


@dataclass
class Sample:
    kind: str
    job: Job


def _enqueue_samples(count: int) -> list[Sample]:
    samples: list[Sample] = []
    n_fast = max(1, count // 2)
    for j in square.enqueue_many([(i,) for i in range(n_fast)]):
        samples.append(Sample("fast", j))
    rest = count - n_fast
    for i in range(max(1, rest // 4)):
        samples.append(Sample("slow", render_report.enqueue(0.5 + (i % 3) * 0.5)))
        samples.append(Sample("async", fetch_page.enqueue(i)))
        samples.append(Sample("retried", flaky_webhook.enqueue(f"hooks.example/{i}")))
        samples.append(Sample("scheduled", square.enqueue_in(2 + i % 3, i)))
    samples.append(Sample("dead", broken_import.enqueue("imports/customers.csv")))
    return samples


def _statuses(samples: list[Sample]) -> list[JobStatus | None]:
    from steep.connection import get_client, get_keys

    keys = get_keys()
    pipe = get_client().pipeline(transaction=False)
    for s in samples:
        qk = keys.queue(s.job.queue)
        pipe.hget(qk.state, s.job.id)
        pipe.hexists(qk.jobs, s.job.id)
        pipe.lindex(qk.result(s.job.id), 0)
    raw = pipe.execute()
    from steep.job import _status_from

    return [_status_from(*raw[i : i + 3]) for i in range(0, len(raw), 3)]


def run_demo(count: int, *, keep_server: bool, console: Console) -> int:
    from steep import server as embedded

    settings = get_settings()
    started_server = False
    if settings.redis_url is None:
        was_running = embedded.server_info(settings) is not None
        socket_path = embedded.ensure_server(settings)
        started_server = not was_running
        console.print(
            f"[bold]Valkey[/] {'started' if started_server else 'attached'} "
            f"(embedded, data in {settings.data_dir}, socket {socket_path})"
        )
    else:
        from steep.settings import redacted_url

        console.print(f"[bold]Redis[/] at {redacted_url(settings.redis_url)}")
    log_path = settings.data_dir / "demo-worker.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "steep",
                "--log-level",
                "info",
                "worker",
                "steep.cli.demo",
                "-q",
                QUEUE,
                "-p",
                "2",
                "-c",
                "8",
            ],
            stdout=log_file,
            stderr=log_file,
        )
    console.print(f"[bold]Worker[/] started: 2 processes x 8 jobs at once (log: {log_path})")
    dashboard = _start_dashboard(console)
    try:
        code = _run(count, console, worker)
        if dashboard is not None and code == 0 and sys.stdin.isatty():
            with contextlib.suppress(EOFError, KeyboardInterrupt):
                input("The dashboard stays up until you press Enter. ")
        return code
    finally:
        if dashboard is not None:
            dashboard.should_exit = True
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if started_server and not keep_server:
            embedded.stop_server(settings)
            console.print("Embedded Valkey stopped (run `steep server` to keep one running).")


def _start_dashboard(console: Console) -> Any:
    """Serve the dashboard on loopback while the demo runs (port 8500, or any free one)."""
    import socket

    from steep.web.serve import serve_in_thread

    port = 8500
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            port = 0
    if port == 0:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
    try:
        server = serve_in_thread("127.0.0.1", port)
    except Exception as exc:  # the demo still works without its dashboard
        console.print(f"[yellow]dashboard not started: {exc}[/]")
        return None
    console.print(f"[bold]Dashboard[/] at http://127.0.0.1:{port}/ (watch the jobs move)")
    return server


def _run(count: int, console: Console, worker: subprocess.Popen[bytes]) -> int:
    started = time.monotonic()
    samples = _enqueue_samples(count)
    console.print(f"Enqueued {len(samples)} jobs in {(time.monotonic() - started) * 1000:.0f} ms")
    settled = {JobStatus.SUCCEEDED, JobStatus.DEAD}
    with Progress(
        TextColumn("[bold]running jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("jobs", total=len(samples))
        deadline = time.monotonic() + 60
        while True:
            statuses = _statuses(samples)
            done = sum(1 for s in statuses if s in settled)
            progress.update(bar, completed=done)
            if done == len(samples):
                break
            if worker.poll() is not None:
                console.print(f"[red]the worker exited with code {worker.returncode}[/]")
                return 1
            if time.monotonic() > deadline:
                console.print("[red]jobs did not finish within 60 s[/]")
                return 1
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    table = Table(title=f"Summary: {len(samples)} jobs in {elapsed:.1f} s", title_justify="left")
    for col in ("kind", "jobs", "succeeded", "dead", "example result"):
        table.add_column(col, justify="right" if col in ("jobs", "succeeded", "dead") else "left")
    by_kind: dict[str, list[tuple[Sample, JobStatus | None]]] = {}
    for sample, st in zip(samples, _statuses(samples), strict=True):
        by_kind.setdefault(sample.kind, []).append((sample, st))
    for kind, rows in by_kind.items():
        counts = Counter(st for _, st in rows)
        example = _example(rows[-1][0].job)
        table.add_row(
            kind,
            str(len(rows)),
            str(counts[JobStatus.SUCCEEDED]),
            str(counts[JobStatus.DEAD]),
            example,
        )
    console.print(table)
    console.print(
        "Inspect it yourself: [bold]steep status[/] (run `steep server` first to keep "
        "the embedded server up), or point STEEP_REDIS_URL at your Redis."
    )
    return 0


def _example(handle: Job) -> str:
    from steep.errors import JobFailed

    try:
        value = handle.result(timeout=1)
    except JobFailed as exc:
        return f"{exc.type.rsplit('.', 1)[-1]}: {exc.message}"
    except TimeoutError:
        return "-"
    return repr(value)[:60]
