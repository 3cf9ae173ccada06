"""The supervisor: starts N worker processes and keeps them running.

- imports the application once up front, so a broken import fails at start
  with its traceback instead of in a restart loop;
- restarts a worker process that dies, returning its in-flight jobs to
  their queues at once (no need to wait for its heartbeat to expire), with
  the back-off and the crash-loop rule of worker/restarts.py;
- restarts a process that exits to be recycled (memory limit, stuck job);
- forwards signals: SIGTERM/SIGINT once for a graceful stop, twice for a
  hard one; SIGTSTP to quiet every process.
Worker processes run in their own session, so a Ctrl-C in the terminal
reaches only the supervisor, which decides what the workers get.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import psutil

from steep import hooks
from steep.connection import make_client
from steep.keys import Keys
from steep.settings import Settings
from steep.worker.heartbeat import requeue_worker
from steep.worker.platforms import check_worker_platform
from steep.worker.process import EXIT_RECYCLE, QueueSpec, host_label
from steep.worker.restarts import RESTART_WINDOW, RSS_SAMPLES, SlotHistory, cause_of, rising

log = logging.getLogger("steep.supervisor")

# The supervisor's exit code when it gave up on a crash loop.
EXIT_CRASH_LOOP = 3
# How often the supervisor samples its processes' memory (for the OOM hint).
RSS_EVERY = 0.5


class Forked:
    """A forked worker process, with the part of `subprocess.Popen` the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone
                self.returncode = -signal.SIGKILL
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker process {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class Child:
    slot: int
    worker_id: str
    proc: subprocess.Popen[bytes] | Forked
    # the read end of the pipe the process reports on: b"R" once ready, or b"E" and
    # the error that stopped it before
    report_fd: int
    started: float = field(default_factory=time.monotonic)
    ready_at: float | None = None
    worked: bool = False  # it wrote finished jobs
    error: str = ""
    rss: deque[int] = field(default_factory=lambda: deque(maxlen=RSS_SAMPLES))

    def read_reports(self) -> None:
        while True:
            try:
                data = os.read(self.report_fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                return
            while data[:1] in (b"R", b"W"):
                if data[:1] == b"R" and self.ready_at is None:
                    self.ready_at = time.monotonic()
                if data[:1] == b"W":
                    self.worked = True
                data = data[1:]
            if data.startswith(b"E"):
                self.error = data[1:].decode("utf-8", "replace").strip()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.report_fd)


class Supervisor:
    def __init__(
        self,
        modules: list[str],
        queues: list[QueueSpec],
        processes: int,
        concurrency: int,
        settings: Settings,
        *,
        max_memory_mb: float | None = None,
        burst: bool = False,
    ) -> None:
        self.modules = modules
        self.queues = queues
        self.processes = processes
        self.concurrency = concurrency
        self.settings = settings
        self.max_memory_mb = max_memory_mb
        self.burst = burst
        self.keys = Keys(settings.namespace)
        self.children: dict[int, Child] = {}
        self._signals: deque[int] = deque()
        self._stopping = 0
        self.slots = {slot: SlotHistory() for slot in range(processes)}
        self._given_up = ""
        self._last_rss = 0.0
        self._warned_threads = False

    def run(self) -> int:
        check_worker_platform()
        for module in self.modules:
            importlib.import_module(module)
        hooks.tickers(self.settings, Keys(self.settings.namespace))  # fail here, once
        self.client = make_client(self.settings)  # also starts the embedded server if needed
        self.client.ping()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP):
            signal.signal(sig, self._record_signal)
        log.info(
            "supervisor %d starting %d worker processes x %d concurrency on queues %s",
            os.getpid(),
            self.processes,
            self.concurrency,
            ",".join(q.name for q in self.queues),
        )
        try:
            for slot in range(self.processes):
                self._spawn(slot)
            return self._watch()
        finally:
            for child in self.children.values():
                if child.proc.poll() is None:
                    child.proc.kill()
                child.close()
            self.client.close()

    def _record_signal(self, signum: int, frame: object) -> None:
        # only record: the watch loop acts on it outside the handler
        self._signals.append(signum)

    def _spawn(self, slot: int) -> None:
        worker_id = f"{host_label()}-{os.getpid()}.{slot}-{os.urandom(3).hex()}"
        history = self.slots[slot]
        history.start_at = None
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        config = {
            "modules": self.modules,
            "queues": [[q.name, q.weight] for q in self.queues],
            "concurrency": self.concurrency,
            "worker_id": worker_id,
            "max_memory_mb": self.max_memory_mb,
            "burst": self.burst,
            "log_level": self.settings.log_level,
            "log_format": self.settings.log_format,
            "log_app": self.settings.log_app,
            "report_fd": write_end,
            "restarts": (
                {**history.record(), "slot": slot, "supervisor": os.getpid()}
                if history.total
                else None
            ),
        }
        proc: subprocess.Popen[bytes] | Forked
        try:
            if self._can_fork():
                from steep.worker.child import run_forked

                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    os.close(read_end)
                    run_forked(config)  # never returns
                proc = Forked(pid)
            else:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "steep.worker.child", json.dumps(config)],
                    start_new_session=True,
                    pass_fds=(write_end,),
                )
        finally:
            os.close(write_end)
        self.children[slot] = Child(slot, worker_id, proc, read_end)
        log.info("worker process %d started (slot %d, id %s)", proc.pid, slot, worker_id)

    def _can_fork(self) -> bool:
        """Fork when asked to and safe: no other thread could hold a lock across the fork."""
        if self.settings.worker_start != "fork" or not hasattr(os, "fork"):
            return False
        if threading.active_count() > 1:
            if not self._warned_threads:
                self._warned_threads = True
                main = threading.main_thread()
                names = ", ".join(t.name for t in threading.enumerate() if t is not main)
                log.warning(
                    "the application started threads at import (%s): worker processes are "
                    'spawned instead of forked (set worker_start = "spawn" to say so)',
                    names,
                )
            return False
        return True

    def _watch(self) -> int:
        while True:
            while self._signals:
                self._act(self._signals.popleft())
            for slot, child in list(self.children.items()):
                child.read_reports()
                code = child.proc.poll()
                if code is not None:
                    child.read_reports()  # its last word, written just before it ended
                    self._reap(slot, child, code)
            if self._given_up:
                log.error("%s", self._given_up)
                self._forward(signal.SIGTERM)
                self._stopping = max(self._stopping, 1)
                self._wait_children(self.settings.shutdown_timeout + 5)
                return EXIT_CRASH_LOOP
            now = time.monotonic()
            waiting = False
            for slot, history in self.slots.items():
                if history.start_at is None or slot in self.children:
                    continue
                if self._stopping:
                    history.start_at = None
                elif now >= history.start_at:
                    self._spawn(slot)
                else:
                    waiting = True
            if not self.children and not waiting:
                return 0
            if now - self._last_rss >= RSS_EVERY:
                self._last_rss = now
                self._sample_memory()
            time.sleep(0.05)

    def _sample_memory(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(psutil.Error):
                child.rss.append(psutil.Process(child.proc.pid).memory_info().rss)

    def _act(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGTSTP:
            log.info("%s: quieting every worker process", name)
            self._forward(signal.SIGTSTP)
            return
        self._stopping += 1
        if self._stopping == 1:
            log.info("%s: stopping gracefully (send again to stop at once)", name)
        else:
            log.warning("%s: stopping at once", name)
        self._forward(signal.SIGTERM)

    def _forward(self, signum: int) -> None:
        for child in self.children.values():
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    def _reap(self, slot: int, child: Child, code: int) -> None:
        del self.children[slot]
        child.close()
        now = time.monotonic()
        lived = now - child.started
        # Its jobs (if any are left) go back now instead of after its heartbeat expires.
        try:
            moved = requeue_worker(
                self.client,
                self.keys,
                child.worker_id,
                [q.name for q in self.queues],
                forget=False,
            )
        except Exception as exc:  # the heartbeat reaper of any worker will do it later
            log.warning("could not return the jobs of worker %s yet: %s", child.worker_id, exc)
            moved = 0
        if self._stopping or (self.burst and code == 0):
            return
        if code == EXIT_RECYCLE:
            log.info("worker process %d recycled; starting a new one", child.proc.pid)
            self._spawn(slot)
            return
        history = self.slots[slot]
        ready_for = None if child.ready_at is None else now - child.ready_at
        history.died(code, ready_for, time.time(), worked=child.worked)
        ended = f"killed by {cause_of(code)}" if code < 0 else f"exited with {code}"
        cause = ended + (f" ({child.error})" if child.error else "")
        give_up = self.settings.give_up_after
        if ready_for is None and give_up and history.unready >= give_up:
            self._given_up = (
                f"worker processes cannot start: the last {history.unready} of slot {slot} "
                f"ended before they became ready (last: {cause}); giving up "
                f"(give_up_after = {give_up}; 0 restarts them forever)"
            )
            return
        delay = history.delay(self.settings.restart_delay, self.settings.restart_delay_max)
        history.start_at = now + delay
        how = "before it became ready" if ready_for is None else f"after {lived:.1f} s"
        hint = ""
        if history.kills >= 2 and rising(child.rss):
            hint = (
                f"; killed {history.kills} times in a row with its memory rising "
                f"(to {child.rss[-1] / 1048576:.0f} MiB): probably the OOM killer: set "
                "max_memory to recycle before it"
            )
        log.error(
            "worker process %d (slot %d) %s %s; %d in-flight jobs returned to their "
            "queues; restarting it in %.1f s (%d restarts in %d min)%s",
            child.proc.pid,
            slot,
            cause,
            how,
            moved,
            delay,
            len(history.restarts),
            RESTART_WINDOW // 60,
            hint,
        )

    def _wait_children(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
