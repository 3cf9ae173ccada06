"""The listening slot: how an idle worker of slot threads waits for its queue's next job.

In a worker process of slot threads (worker/slots.py) that serves one queue, one parked
slot at a time blocks on it: BLMOVE into the process's in-flight list with the claim
pipelined behind it, on the slot's own connection, as the event loop's fetcher does
(worker/fetch.py). A lone job then starts in the thread that receives it, with no hop
through the event loop. Before it runs the job, the listening slot passes the role to a
parked slot (a token in the slots' inbox), so the queue is always listened to by exactly
one slot; one at a time also keeps the claim behind each BLMOVE from taking another's job.
Quiet and stop end the wait at once (the fetcher sends CLIENT UNBLOCK); a job the wait
took meanwhile goes straight back to the front of its queue. A worker of several queues,
or a burst worker, waits through the event loop's fetcher instead.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis

from steep.connection import RETRYABLE, SCRIPTS
from steep.lane import reply_error
from steep.worker import fetch
from steep.worker.slot_calls import SlotCalls, pack

try:
    import hiredis
except ImportError:  # pragma: no cover - redis[hiredis] is a dependency
    hiredis = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from steep.worker.executor import Running
    from steep.worker.slots import SlotThread

log = logging.getLogger("steep.worker")

# The inbox token that makes a parked slot the listening one.
LISTEN: Any = ("listen",)


def listen(slot: SlotThread) -> tuple[str, str, bytes, Running] | None:
    """Wait for the queue's next job in `slot`; None once fetching ends."""
    slots = slot.slots
    process = slot.process
    qname = slots.listen_queue
    assert qname is not None
    backoff = 0.05
    while not process.fetcher.quiet and not slot.abandoned:
        # a job waiting already, or one with a priority (whose wake-up token the wait drops)
        following = slot._claim_next([qname])
        if following is not None:
            slots.inbox.put(LISTEN)
            return following
        try:
            claimed = _wait(slot, qname)
        except (*RETRYABLE, OSError, hiredis.ProtocolError, redis.ResponseError) as exc:
            # an error reply too (a demoted primary's READONLY): a new connection, later
            slot._drop_lane()
            slots.warn(f"lost connection to Redis while waiting for jobs ({exc})")
            time.sleep(backoff)
            backoff = min(2.0, backoff * 2)
            continue
        backoff = 0.05
        if not claimed:
            continue
        ids = [claimed[i] for i in range(0, len(claimed), 2)]
        if process.fetcher.quiet or slot.abandoned:
            _give_back(slot, qname, ids)
            return None
        first = slot._take(qname, claimed[:2])
        # more than one when an earlier wait's claim reply was lost: the others go to
        # parked slots through the event loop, as the fetcher's claims do
        for i in range(2, len(claimed), 2):
            slot._tell(process._start, qname, claimed[i].decode(), claimed[i + 1])
        if first:
            slots.inbox.put(LISTEN)
            return first  # type: ignore[return-value]
    return None


def _wait(slot: SlotThread, qname: str) -> list[bytes]:
    """One blocking wait on the queue: the (id, envelope) pairs it claimed."""
    process = slot.process
    qk = process.qkeys[qname]
    keys = [qk.queued, qk.inflight(process.worker_id), qk.jobs, qk.state, qk.paused]
    marker = f"running {process.worker_id}"
    lane = slot._lane()
    if slot.client_id is None:
        slot.client_id = int(slot._send(pack("CLIENT", "ID"), 1)[0])
    packed = SlotCalls.wait(keys, marker, fetch.BLOCK_TIMEOUT)
    before = lane.sock.gettimeout()
    # a server that stopped answering: give the connection up (a job BLMOVE may have moved
    # stays in the in-flight list, where the stray check finds it)
    lane.sock.settimeout(fetch.BLOCK_TIMEOUT + fetch.BLOCK_REPLY_GRACE)
    slot.blocking = True  # before the last look at quiet: the fetcher's unblock sees it
    if process.fetcher.quiet:
        slot.blocking = False
        return []
    try:
        moved, claimed = slot._send(packed, 2)
    finally:
        slot.blocking = False
    lane.sock.settimeout(before)
    if isinstance(moved, hiredis.ReplyError):
        raise reply_error(str(moved))
    if isinstance(claimed, hiredis.ReplyError):
        if not str(claimed).startswith("NOSCRIPT"):
            raise reply_error(str(claimed))
        # the server lacked the script (fresh or restarted): load and repeat
        if moved is None:
            slot.slots.load_scripts()
            return []
        claimed = SCRIPTS.claim_moved(slot.slots.client, keys, [marker])
    if moved is not None and not claimed:
        token = moved.decode(errors="replace") if isinstance(moved, bytes) else str(moved)
        if " " not in token:  # a job the claim gave back: its queue is paused
            time.sleep(fetch.PAUSED_BACKOFF)
    return claimed  # type: ignore[no-any-return]


def _give_back(slot: SlotThread, qname: str, ids: list[bytes]) -> None:
    qk = slot.process.qkeys[qname]
    inflight = qk.inflight(slot.process.worker_id)
    try:
        SCRIPTS.requeue(slot.slots.client, [inflight, qk.queued, qk.state, qk.jobs], ids)
    except RETRYABLE as exc:  # they go back with the rest of the in-flight jobs at exit
        log.debug("jobs not given back yet: %s", exc)
