"""The calls a slot thread sends (worker/slots.py), packed by hiredis: its claim, its
acknowledgement and the listening slot's wait. The keys are built once per queue; the
arguments are the same as the settler's and the fetcher's (worker/settle.py, fetch.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from steep.connection import SCRIPTS
from steep.worker.settle import DONE_INDEX_SIZE, ack_call

try:
    import hiredis
except ImportError:  # pragma: no cover - redis[hiredis] is a dependency
    hiredis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from steep.worker.process import WorkerProcess


def pack(*command: Any) -> bytes:
    return hiredis.pack_command(command)  # type: ignore[arg-type]


class SlotCalls:
    def __init__(self, process: WorkerProcess) -> None:
        # per queue, what every claim and every ack of one job sends before its arguments
        self._claim: dict[str, tuple[Any, ...]] = {}
        self._ack: dict[str, tuple[Any, list[str]]] = {}
        for qname, qk in process.qkeys.items():
            keys, _ = ack_call(qk, process.worker_id, [])
            self._ack[qname] = (qk, keys)
            claim = [qk.queued, qk.inflight(process.worker_id), qk.jobs, qk.state, qk.paused]
            claim.append(qk.prioritized)
            self._claim[qname] = ("EVALSHA", SCRIPTS.claim.sha, len(claim), *claim)
        self._day = (0, "")

    def claim(self, qname: str, marker: str) -> bytes:
        """One job of the queue, in the claim script's order (priorities first)."""
        return pack(*self._claim[qname], 1, marker)

    def ack(self, qname: str, entry: tuple[str, bytes | None, int]) -> bytes:
        """The ack script's call for one success (the settler's, for one job)."""
        qk, keys = self._ack[qname]
        now = time.time()
        day_no = int(now // 86400)
        if self._day[0] != day_no:
            self._day = (day_no, time.strftime("%Y-%m-%d", time.gmtime(now)))
        job_id, result, ttl = entry
        argv: tuple[Any, ...] = (self._day[1], 1, job_id, int(now * 1000), DONE_INDEX_SIZE)
        if result is None:
            return pack("EVALSHA", SCRIPTS.ack.sha, len(keys), *keys, *argv)
        return pack(
            "EVALSHA",
            SCRIPTS.ack.sha,
            len(keys) + 1,
            *keys,
            qk.result(job_id),
            *argv,
            job_id,
            result,
            ttl,
        )

    @staticmethod
    def wait(keys: list[str], marker: str, timeout: float) -> bytes:
        """BLMOVE into the in-flight list, with the claim of what it moved behind it."""
        return pack("BLMOVE", keys[0], keys[1], "RIGHT", "LEFT", timeout) + pack(
            "EVALSHA", SCRIPTS.claim_moved.sha, len(keys), *keys, marker
        )
