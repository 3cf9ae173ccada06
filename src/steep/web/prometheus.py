"""`/metrics` in the Prometheus text format, read from Redis on each scrape.

Queue gauges and the processed/failed counters are exact. The run-time
histogram per job name covers a trailing window (the last 60 minutes of the
workers' per-minute buckets), so it is a gauge-like histogram: use
`histogram_quantile()` on it directly, not on its `rate()`.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response

from steep import ops

WINDOW_MINUTES = 60


class SteepCollector:
    def collect(self) -> Iterator[Metric]:
        qs = ops.queues()
        size = GaugeMetricFamily(
            "steep_queue_jobs", "Jobs by queue and state", labels=["queue", "state"]
        )
        latency = GaugeMetricFamily(
            "steep_queue_latency_seconds", "Age of the next job to run", labels=["queue"]
        )
        paused = GaugeMetricFamily(
            "steep_queue_paused", "1 while the queue is paused", labels=["queue"]
        )
        processed = CounterMetricFamily(
            "steep_jobs_processed", "Jobs that succeeded", labels=["queue"]
        )
        failed = CounterMetricFamily("steep_jobs_failed", "Failed attempts", labels=["queue"])
        for q in qs:
            size.add_metric([q.name, "queued"], q.size)
            size.add_metric([q.name, "scheduled"], q.scheduled)
            size.add_metric([q.name, "dead"], q.dead)
            latency.add_metric([q.name], q.oldest_age or 0.0)
            paused.add_metric([q.name], int(q.paused))
            processed.add_metric([q.name], q.processed)
            failed.add_metric([q.name], q.failed)
        yield from (size, latency, paused, processed, failed)
        ws = ops.workers()
        workers = GaugeMetricFamily("steep_workers", "Registered worker processes")
        workers.add_metric([], len(ws))
        busy = GaugeMetricFamily("steep_jobs_running", "Jobs running now")
        busy.add_metric([], sum(len(w.running) for w in ws))
        restarts = CounterMetricFamily(
            "steep_worker_restarts",
            "Restarts of a supervisor's worker slot (its processes that died)",
            labels=["host", "supervisor", "slot", "last_cause"],
        )
        for w in ws:
            if w.restarts and w.restarts.get("total"):
                r = w.restarts
                labels = [w.host, str(r.get("supervisor", "")), str(r.get("slot", ""))]
                restarts.add_metric([*labels, r.get("last_cause", "")], r["total"])
        yield from (workers, busy, restarts)
        runtime = HistogramMetricFamily(
            "steep_job_runtime_seconds",
            f"Run time per job name over the last {WINDOW_MINUTES} minutes",
            labels=["job"],
        )
        for m in ops.job_metrics(WINDOW_MINUTES):
            if not m.buckets:
                continue
            top = max(m.buckets)
            cumulative, seen = [], 0
            for i in range(top + 1):
                seen += m.buckets.get(i, 0)
                cumulative.append((repr((2.0**i) / 1000), seen))
            cumulative.append(("+Inf", seen))
            runtime.add_metric([m.name], cumulative, sum_value=m.total_ms / 1000)
        yield runtime


def metrics(request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SteepCollector())  # type: ignore[arg-type]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
