"""A step's output: every line masked, then streamed to Redis (capped) as it is
written and appended to a file kept with the run.

Readers (the CLI's `logs --follow`, the dashboard) read the stream from a cursor, so
they see each line once, as soon as the step writes it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from steep.pipeline import store

MASK = "***"
FLUSH_EVERY = 0.05  # seconds between writes of buffered lines to Redis
MAX_LINE = 8192


class Masker:
    """Replaces each secret value, wherever it appears in a line, by ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret that contains another is hidden whole
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class LogWriter:
    """Collects one step's lines from any thread and writes them out in small batches."""

    def __init__(self, run_id: str, step: str, path: Path, masker: Masker, max_lines: int) -> None:
        self.key = store.keys().log(run_id, step)
        self.masker = masker
        self.max_lines = max_lines
        self.file: Any = None
        self.file_error: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:  # a full disk: the lines still go to Redis
            self.file_error = f"the log file {path} is not written: {exc.strerror or exc}"
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._flusher, name=f"log-{step}", daemon=True)
        self._thread.start()

    def line(self, text: str) -> None:
        text = self.masker(text.rstrip("\r\n"))
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + " [line cut]"
        with self._lock:
            self._pending.append(text)
        self._wake.set()

    def note(self, text: str) -> None:
        """A line of steep's own about the step (`[steep] ...`)."""
        self.line(f"[steep] {text}")

    def _flusher(self) -> None:
        while True:
            self._wake.wait(1.0)
            time.sleep(FLUSH_EVERY)  # gather what arrives meanwhile into one round trip
            self._wake.clear()
            self.flush()
            if self._closed:
                return

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
        if not lines:
            return
        if self.file is not None:
            try:
                self.file.write("".join(f"{line}\n" for line in lines))
                self.file.flush()
            except OSError as exc:
                self.file_error = f"the log file is not written: {exc.strerror or exc}"
                lines.append(f"[steep] {self.file_error}")
                self._close_file()
        pipe = store.client().pipeline(transaction=False)
        for line in lines:
            pipe.xadd(self.key, {"l": line}, maxlen=self.max_lines, approximate=True)
        pipe.expire(self.key, 30 * 86400)
        pipe.execute()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(10)
        self.flush()
        self._close_file()

    def _close_file(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


def read(run_id: str, step: str, after: str = "0-0", count: int = 5000) -> list[tuple[str, str]]:
    """(cursor, line) of the step's lines after `after`, oldest first."""
    raw = store.client().xrange(store.keys().log(run_id, step), f"({after}", "+", count=count)
    return [(i.decode(), fields[b"l"].decode()) for i, fields in raw]  # type: ignore[union-attr,index]


def trimmed(run_id: str, step: str) -> bool:
    """Whether older lines were dropped from the stream (the file has them all)."""
    first = store.client().xrange(store.keys().log(run_id, step), "-", "+", count=1)
    if not first:
        return False
    info: Any = store.client().xinfo_stream(store.keys().log(run_id, step))
    return int(info.get("entries-added", info["length"])) > int(info["length"])


def follow(run_id: str, steps: list[str], block_ms: int = 1000) -> Iterator[tuple[str, str]]:
    """(step, line) as they are written, until the run has its verdict and every line is
    read."""
    r, k = store.client(), store.keys()
    cursors = {k.log(run_id, s): "0-0" for s in steps}
    names = {k.log(run_id, s): s for s in steps}
    while True:
        done = (store.state_of(run_id) or "error") in ("passed", "failed", "cancelled", "error")
        got: Any = r.xread(cursors, count=1000, block=None if done else block_ms)  # type: ignore[arg-type]
        for key, entries in got or []:
            name = key.decode()
            for entry_id, fields in entries:
                cursors[name] = entry_id.decode()
                yield names[name], fields[b"l"].decode()
        if done and not got:
            return
