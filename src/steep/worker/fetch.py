"""Fetching jobs for one worker process: what to claim, and when.

The Fetcher claims jobs from the queues (strict or weighted order) into this process's own
in-flight lists, one Lua call per queue per batch on the process's lane, and hands each
claimed job to the process to start. A busy worker waits a moment for more free slots so
that jobs finishing one by one are replaced in batches. An idle worker blocks on every
queue at once, each on a lane of its own (BLMOVE with the claim behind it, so a lone job
starts one round trip after it arrives). When fetching ends (quiet or stop) the blocked
fetches are waited out and whatever they claimed goes straight back to its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from steep.connection import RETRYABLE, SCRIPTS
from steep.lane import AsyncLane, reply_error
from steep.lane_cluster import REDIRECTED

if TYPE_CHECKING:
    from steep.worker.process import WorkerProcess

log = logging.getLogger("steep.worker")

# How long a busy worker may wait for more free slots before it claims, so that
# jobs finishing one by one are replaced in batches (see Fetcher.run).
BATCH_WINDOW = 0.002

# How long an idle worker blocks on a queue before looking again (pause
# changes and shutdown are noticed at least this often).
BLOCK_TIMEOUT = 1.0
# A blocking fetch on a paused queue that holds jobs: BLMOVE takes one at once and the claim
# gives it back. Waiting this long before blocking again keeps an idle worker from doing that
# thousands of times a second while the queue is paused; a resume is seen within it.
PAUSED_BACKOFF = 0.25
# How long past BLOCK_TIMEOUT a blocking fetch waits for its reply before it gives the
# connection up as dead (a frozen server, a network that drops packets silently).
BLOCK_REPLY_GRACE = 10.0


class Fetcher:
    """The fetch loop of one WorkerProcess, made in its `arun` once the connections exist.

    It shares the process's `running` dict and wake-up event (the same objects, so the
    hot path looks nothing up through the process) and starts jobs with its `_start`.
    """

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.loop = process.loop
        self.redis = process.redis
        self.lane = process.lane  # claims share the process's lane with its acks
        self.settler = process.settler
        self.queues = process.queues
        self.qkeys = process.qkeys
        self.worker_id = process.worker_id
        self.concurrency = process.concurrency
        self.batch_floor = process.batch_floor
        self.weighted = process.weighted
        self.burst = process.burst
        self.running = process.running
        self.start = process._start
        self.wake = process._wake  # something changed: a free slot, a stop, a quiet
        self.quiet = False  # no new jobs: fetching ends
        self.blockers: dict[str, asyncio.Task[list[bytes]]] = {}
        self.lanes: dict[str, AsyncLane] = {}  # one per queue, for its blocking fetch
        self.block_ids: dict[str, int] = {}  # queue -> CLIENT ID of its lane's connection
        self._unblocking: set[asyncio.Task[Any]] = set()

    async def aclose(self) -> None:
        for lane in self.lanes.values():
            await lane.aclose()

    def _queue_order(self) -> list[str]:
        if not self.weighted:
            return [q.name for q in self.queues]
        # weighted: a random order in which heavier queues tend to come first
        pool = [(q.name, max(q.weight, 1)) for q in self.queues]
        order: list[str] = []
        while pool:
            total = sum(w for _, w in pool)
            pick = random.uniform(0, total)
            for i, (name, weight) in enumerate(pool):
                pick -= weight
                if pick <= 0:
                    order.append(name)
                    pool.pop(i)
                    break
            else:
                order.append(pool.pop()[0])
        return order

    def _free_slots(self) -> int:
        return self.concurrency - len(self.running)

    async def run(self) -> None:
        slots = self.process.slots
        if slots is not None and slots.listen_queue is not None:
            # a slot thread waits on the queue itself (worker/listen.py)
            while not self.quiet:
                self.wake.clear()
                await self.wake.wait()
            return
        backoff = 0.05
        gather_until = 0.0
        while not self.quiet:
            try:
                free = self._free_slots()
                if free <= 0:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                if free < self.batch_floor and self.running:
                    # A few slots are free while other jobs still run: wait up to
                    # BATCH_WINDOW for more to free up, so that one claim brings many
                    # jobs instead of one round trip per finished job. An idle worker
                    # (nothing running) claims at once: a lone job never waits.
                    now = self.loop.time()
                    if not gather_until:
                        gather_until = now + BATCH_WINDOW
                        self.loop.call_at(gather_until, self.wake.set)
                    if now < gather_until:
                        self.wake.clear()
                        await self.wake.wait()
                        continue
                gather_until = 0.0
                if await self._claim(free):
                    backoff = 0.05
                    continue
                if self.burst:
                    if await self._burst_done():
                        self.process.request_stop("burst finished")
                        break
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), 0.02)
                    continue
                await self._block()
                backoff = 0.05
            except RETRYABLE as exc:
                log.warning("lost connection to Redis (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        await self._drain_blockers()

    def _marker(self) -> str:
        return f"running {self.worker_id} {int(time.time() * 1000)}"

    async def _claim(self, free: int) -> int:
        """Take up to `free` jobs, strictly in queue order; returns how many."""
        taken = 0
        for qname in self._queue_order():
            if free - taken <= 0 or self.quiet:
                break
            taken += await self._claim_from(qname, free - taken)
        return taken

    async def _claim_from(self, qname: str, want: int) -> int:
        qk = self.qkeys[qname]
        argv: list[Any] = [want, self._marker()]
        inflight = qk.inflight(self.worker_id)
        keys = [qk.queued, inflight, qk.jobs, qk.state, qk.paused, qk.prioritized]
        items = await self.lane.run(SCRIPTS.claim, keys, argv)
        for i in range(0, len(items), 2):
            self.start(qname, items[i].decode(), items[i + 1])
        return len(items) // 2

    async def _block(self) -> None:
        """Wait on every queue at once until one has a job (or a wake-up)."""
        for q in self.queues:
            if q.name not in self.blockers:
                self.blockers[q.name] = asyncio.create_task(self._block_on(q.name))
        self.wake.clear()
        waker = asyncio.create_task(self.wake.wait())
        done, _ = await asyncio.wait(
            [*self.blockers.values(), waker], return_when=asyncio.FIRST_COMPLETED
        )
        waker.cancel()
        for qname, task in list(self.blockers.items()):
            # once quiet, what a fetch claimed is not started: _drain_blockers returns it
            if task in done and not self.quiet:
                del self.blockers[qname]
                items = task.result()
                for i in range(0, len(items), 2):
                    self.start(qname, items[i].decode(), items[i + 1])
        # let the jobs just started begin before the next claim goes out
        await asyncio.sleep(0)

    async def _block_on(self, qname: str) -> list[bytes]:
        """Block until the queue has a job; returns the claimed (id, envelope) pairs."""
        qk = self.qkeys[qname]
        keys = [qk.queued, qk.inflight(self.worker_id), qk.jobs, qk.state, qk.paused]
        marker = f"running {self.worker_id}"
        # BLMOVE puts the job straight into our in-flight list: if this process dies
        # between here and the claim, the job is recovered like any other. The claim
        # rides in the same pipeline, so the server runs it as soon as BLMOVE returns.
        try:
            # Each queue blocks on a lane of its own (claims and acks must not queue behind
            # a blocked BLMOVE): a lone job's wait is one round trip with little around it.
            lane = self.lanes.get(qname)
            if lane is None:
                lane = self.lanes[qname] = self.lane.block_lane(qk.queued)
            if await lane.open():
                self.block_ids[qname] = await lane.client_id()
                return await self._block_on_lane(lane, qk.queued, keys, marker)
        except REDIRECTED as exc:
            # on a cluster, the queue's slot moved (or is moving, or its primary failed
            # over): nothing ran; block again on the primary the refreshed table names
            log.info("queue %s is served elsewhere now (%s); following it", qname, exc)
            await self._drop_block_lane(qname)
            await self.lane.rerouted()
            await asyncio.sleep(0.05)
            return []
        except RETRYABLE as exc:
            log.warning("lost connection to Redis while waiting for jobs (%s)", exc)
            await asyncio.sleep(0.5)
            return []
        pipe = self.redis.pipeline(transaction=False)
        # redis-py annotates the timeout as int; BLMOVE takes fractional seconds (Redis 6+)
        pipe.blmove(qk.queued, keys[1], BLOCK_TIMEOUT, "RIGHT", "LEFT")  # type: ignore[arg-type]
        pipe.evalsha(SCRIPTS.claim_moved.sha, len(keys), *keys, marker)
        try:
            moved, claimed = await pipe.execute(raise_on_error=False)
            if isinstance(moved, Exception):
                raise moved
            if isinstance(claimed, NoScriptError):
                # the server lacked the script (fresh or restarted): load and repeat
                if moved is None:
                    return []
                claimed = await SCRIPTS.claim_moved.run_async(self.redis, keys, [marker])
            elif isinstance(claimed, Exception):
                raise claimed
            await _after_give_back(moved, claimed)
            return claimed  # type: ignore[no-any-return]
        except RETRYABLE as exc:
            log.warning("lost connection to Redis while waiting for jobs (%s)", exc)
            await asyncio.sleep(0.5)
            return []

    async def _block_on_lane(
        self, lane: AsyncLane, queued: str, keys: list[str], marker: str
    ) -> list[bytes]:
        moved_reply = lane.send("BLMOVE", queued, keys[1], "RIGHT", "LEFT", BLOCK_TIMEOUT)
        claim_reply = lane.send("EVALSHA", SCRIPTS.claim_moved.sha, len(keys), *keys, marker)
        try:
            async with asyncio.timeout(BLOCK_TIMEOUT + BLOCK_REPLY_GRACE):
                moved = await moved_reply
                claimed = await claim_reply
        except TimeoutError:
            # the server stopped answering: drop the connection (a job BLMOVE may have
            # moved stays in our in-flight list, where the stray check finds it)
            claim_reply.cancel()
            await lane.aclose()
            raise ConnectionError("no reply to a blocking fetch; reconnecting") from None
        except BaseException:
            # the connection was lost: the claim's reply is lost with it
            if claim_reply.done() and not claim_reply.cancelled():
                claim_reply.exception()
            else:
                claim_reply.cancel()
            raise
        # error replies arrive as values (hiredis.ReplyError)
        if isinstance(moved, Exception):
            raise reply_error(str(moved))
        if isinstance(claimed, Exception):
            if not str(claimed).startswith("NOSCRIPT"):
                raise reply_error(str(claimed))
            # the server lacked the script (fresh or restarted): load and repeat
            if moved is None:
                await lane.client.script_load(SCRIPTS.claim_moved.source)
                return []
            claimed = await SCRIPTS.claim_moved.run_async(self.redis, keys, [marker])
        await _after_give_back(moved, claimed)
        return claimed  # type: ignore[no-any-return]

    def unblock(self) -> None:
        """Quiet or stop: end the blocked fetches now (CLIENT UNBLOCK makes a BLMOVE
        return as on its timeout), so that quiet takes effect at once, no job that arrives
        in the block's last second is taken only to be handed back, and an idle worker
        stops in milliseconds. A fetch not blocked yet ends on its own timeout."""
        for qname, blocker in self.blockers.items():
            task = asyncio.ensure_future(self._unblock(qname, blocker))
            self._unblocking.add(task)
            task.add_done_callback(self._unblocking.discard)
        if self.process.slots is not None and self.process.slots.listen_queue is not None:
            task = asyncio.ensure_future(self._unblock_slots())
            self._unblocking.add(task)
            task.add_done_callback(self._unblocking.discard)

    async def _unblock_slots(self) -> None:
        """End the listening slot's wait (it may be about to send it: look for a moment)."""
        slots = self.process.slots
        assert slots is not None
        for _ in range(50):
            ids = slots.listening()
            for client_id in ids:
                with contextlib.suppress(*RETRYABLE):
                    await self.redis.client_unblock(client_id)
            if not any(t.blocking for t in slots.threads):
                return
            await asyncio.sleep(0.01)

    async def _unblock(self, qname: str, blocker: asyncio.Task[Any]) -> None:
        # the BLMOVE may still be on its way to the server (or its lane still opening,
        # its CLIENT ID unknown): try again for a moment
        for _ in range(50):
            if blocker.done():
                return
            client_id = self.block_ids.get(qname)
            lane = self.lanes.get(qname)
            if client_id is not None and lane is not None:
                # to the server the lane is connected to (on a cluster: its queue's primary)
                with contextlib.suppress(*RETRYABLE):
                    if await lane.client.client_unblock(client_id):
                        return
            await asyncio.sleep(0.01)

    async def _drop_block_lane(self, qname: str) -> None:
        lane = self.lanes.pop(qname, None)
        self.block_ids.pop(qname, None)
        if lane is not None:
            await lane.aclose()

    async def _drain_blockers(self) -> None:
        """Fetching has ended (quiet or stop): wait out the blocked fetches and give
        back at once whatever they claimed, so those jobs are not held (and shown as
        running) by a worker that will not run them."""
        # Never cancel a blocked BLMOVE: the server may have moved a job already.
        blockers, self.blockers = self.blockers, {}
        results = await asyncio.gather(*blockers.values(), return_exceptions=True)
        for qname, items in zip(blockers, results, strict=True):
            if isinstance(items, BaseException) or not items:
                continue  # whatever is left in flight goes back with _return_unfinished
            qk = self.qkeys[qname]
            ids = [items[i] for i in range(0, len(items), 2)]
            with contextlib.suppress(*RETRYABLE):
                await SCRIPTS.requeue.run_async(
                    self.redis, [qk.inflight(self.worker_id), qk.queued, qk.state, qk.jobs], ids
                )

    async def _burst_done(self) -> bool:
        slots = self.process.slots
        if self.running or self.settler.busy or (slots is not None and slots.busy):
            return False
        pipe = self.redis.pipeline(transaction=False)
        for qk in self.qkeys.values():
            pipe.llen(qk.queued)
            pipe.zcard(qk.scheduled)
            pipe.zcard(qk.prioritized)
        return not any(await pipe.execute())


async def _after_give_back(moved: Any, claimed: Any) -> None:
    """Pause a little when a blocking fetch moved a job (not a wake-up token, which has a
    space) and the claim gave it back: its queue is paused."""
    if moved is None or claimed:
        return
    token = moved.decode(errors="replace") if isinstance(moved, bytes) else str(moved)
    if " " not in token:
        await asyncio.sleep(PAUSED_BACKOFF)
