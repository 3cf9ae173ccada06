"""The producer side of one measurement, run by run.py inside the system's own environment.

    <env>/bin/python benchmarks/driver.py ACTION --variant NAME [options]

Actions:
  enqueue   time N single enqueue calls, one after the other, from this one producer
  bulk      time N enqueues through the library's bulk call, in batches of --batch
  fill      enqueue N jobs the fastest way the library has (bulk if any), untimed for the report
  latency   with workers already running: warm up, then send up to --n jobs one at a time, each
            once the previous one has started and at least --gap-ms after it; report
            enqueue->start latencies (the job writes time.time() into bench:lat)

--budget S stops enqueue/bulk/latency early once S seconds have passed (the result says so).

Prints one JSON object on the last line of stdout. Needs BENCH_REDIS_URL; imports the adapter
module systems.<adapter> (PYTHONPATH=benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from systems.base import LAT_ACK_KEY, LAT_KEY, Variant


def find_variant(name: str) -> Variant:
    from systems import ADAPTERS

    for adapter in ADAPTERS:
        mod = importlib.import_module(f"systems.{adapter}")
        for v in mod.VARIANTS:
            if v.name == name:
                return v
    raise SystemExit(f"unknown variant {name!r}")


class Runner:
    """Calls a producer method and awaits it when the library is asynchronous."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.loop = asyncio.new_event_loop() if producer.is_async else None

    def call(self, fn: Callable[..., Awaitable[Any] | None], *args: Any) -> Any:
        result = fn(*args)
        if inspect.isawaitable(result):
            assert self.loop is not None
            return self.loop.run_until_complete(result)
        return result

    def run(self, coro_fn: Callable[[], Awaitable[Any]], sync_fn: Callable[[], Any]) -> Any:
        if self.loop is not None:
            return self.loop.run_until_complete(coro_fn())
        return sync_fn()

    def close(self) -> None:
        try:
            self.call(self.producer.close)
        finally:
            if self.loop is not None:
                self.loop.close()


def _deadline(budget: float) -> float:
    return time.perf_counter() + budget if budget > 0 else float("inf")


def do_enqueue(r: Runner, kind: str, n: int, budget: float) -> dict[str, Any]:
    """Up to ``n`` single enqueues one after the other; stop early once ``budget`` s passed."""
    p = r.producer
    perf = time.perf_counter

    async def many_async(end: float) -> int:
        for i in range(n):
            await p.enqueue(kind, i)
            if perf() >= end:
                return i + 1
        return n

    def many_sync(end: float) -> int:
        enqueue = p.enqueue
        for i in range(n):
            enqueue(kind, i)
            if perf() >= end:
                return i + 1
        return n

    t0 = perf()
    end = _deadline(budget)
    done = int(r.run(lambda: many_async(end), lambda: many_sync(end)))
    dt = perf() - t0
    return {"n": done, "target": n, "partial": done < n, "seconds": dt, "rate": done / dt}


def do_bulk(r: Runner, kind: str, n: int, batch: int, budget: float) -> dict[str, Any]:
    """Up to ``n`` jobs through the bulk call in batches of ``batch``; stop once over budget."""
    p = r.producer
    batches = [list(range(s, min(n, s + batch))) for s in range(0, n, batch)]
    perf = time.perf_counter

    async def run_async(end: float) -> int:
        sent = 0
        for b in batches:
            await p.enqueue_many(kind, b)
            sent += len(b)
            if perf() >= end:
                break
        return sent

    def run_sync(end: float) -> int:
        sent = 0
        for b in batches:
            p.enqueue_many(kind, b)
            sent += len(b)
            if perf() >= end:
                break
        return sent

    t0 = perf()
    end = _deadline(budget)
    done = int(r.run(lambda: run_async(end), lambda: run_sync(end)))
    dt = perf() - t0
    return {
        "n": done,
        "target": n,
        "partial": done < n,
        "batch": batch,
        "seconds": dt,
        "rate": done / dt,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def do_latency(
    r: Runner, n: int, gap_ms: float, warmup: int, ready_timeout: float, budget: float
) -> dict[str, Any]:
    """Closed loop: send one job, wait until it has started, send the next (>= gap_ms apart).

    The job writes its start time into bench:lat and pushes its index onto bench:lat:ack in
    one round trip; the producer BLPOPs the ack. Latency = start time - time.time() taken just
    before the enqueue call. Stops after ``n`` jobs or once ``budget`` seconds have passed.
    """
    import redis

    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    p = r.producer
    perf = time.perf_counter

    def wait_ack(index: int, timeout: float) -> bool:
        end = perf() + timeout
        want = str(index).encode()
        while True:
            left = end - perf()
            if left <= 0:
                return False
            # Short blocking calls: redis-py's socket timeout must not fire first.
            got = client.blpop([LAT_ACK_KEY], timeout=min(1.0, max(0.01, left)))
            if got is not None and got[1] == want:
                return True

    # Warm-up (negative indices): the first one waits for the workers to come up.
    t_ready0 = perf()
    for k in range(warmup):
        r.call(p.enqueue, "lat", -(k + 1))
        if not wait_ack(-(k + 1), ready_timeout if k == 0 else 10.0):
            raise TimeoutError(f"warm-up job {k} did not start (workers not ready?)")
    ready_s = perf() - t_ready0
    time.sleep(0.3)
    client.delete(LAT_ACK_KEY)

    gap = gap_ms / 1000.0
    sent: list[float] = []
    timed_out = 0
    end = _deadline(budget)
    last = 0.0
    for k in range(n):
        delay = last + gap - perf()
        if delay > 0:
            time.sleep(delay)
        if perf() >= end:
            break
        last = perf()
        sent.append(time.time())
        r.call(p.enqueue, "lat", k)
        if not wait_ack(k, max(0.05, end - perf())):
            timed_out = 1
            break
    count = len(sent)
    starts = client.hmget(LAT_KEY, [str(k) for k in range(count)])
    lat_ms = sorted(
        (float(s) - e) * 1000.0 for s, e in zip(starts, sent, strict=True) if s is not None
    )
    client.close()
    return {
        "n": len(lat_ms),
        "target": n,
        "partial": count < n,
        "unstarted_at_budget": timed_out,
        "gap_ms": gap_ms,
        "ready_s": ready_s,
        "p50_ms": _percentile(lat_ms, 0.50),
        "p90_ms": _percentile(lat_ms, 0.90),
        "p99_ms": _percentile(lat_ms, 0.99),
        "max_ms": lat_ms[-1] if lat_ms else float("nan"),
        "mean_ms": sum(lat_ms) / len(lat_ms) if lat_ms else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["enqueue", "bulk", "fill", "latency", "probe"])
    ap.add_argument("--variant", required=True)
    ap.add_argument("--kind", default="noop", choices=["noop", "io", "lat"])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--gap-ms", type=float, default=5.0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    ap.add_argument("--budget", type=float, default=0.0, help="seconds; 0 = no budget")
    args = ap.parse_args()

    variant = find_variant(args.variant)
    adapter = importlib.import_module(f"systems.{variant.adapter}")
    if args.action == "probe":
        # Import the producer side (and so the tasks module) without sending anything.
        producer = adapter.make_producer(variant, os.environ["BENCH_REDIS_URL"])
        Runner(producer).close()
        print(json.dumps({"ok": True}))
        return 0
    runner = Runner(adapter.make_producer(variant, os.environ["BENCH_REDIS_URL"]))
    try:
        if args.action == "enqueue":
            out = do_enqueue(runner, args.kind, args.n, args.budget)
        elif args.action == "bulk":
            out = do_bulk(runner, args.kind, args.n, args.batch, args.budget)
        elif args.action == "fill":
            out = (
                do_bulk(runner, args.kind, args.n, args.batch, args.budget)
                if variant.bulk
                else do_enqueue(runner, args.kind, args.n, args.budget)
            )
        else:
            out = do_latency(
                runner, args.n, args.gap_ms, args.warmup, args.ready_timeout, args.budget
            )
    finally:
        runner.close()
    sys.stdout.flush()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
