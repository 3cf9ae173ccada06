"""steep.ops.stats: daily history, per job name per minute metrics, percentiles."""

from __future__ import annotations

import time

import pytest

from steep import ops
from steep.connection import get_keys
from steep.ops._util import utc_day, utc_minute
from tests import jobs


def test_history_sums_queues_per_day(client, run_worker):
    jobs.add.enqueue(1, 1)
    jobs.on_low.enqueue("h", 1)
    run_worker("default,low")
    days = ops.history(days=30)
    assert len(days) == 30 and days[-1]["day"] == utc_day(time.time())
    assert days[-1]["processed"] == 2 and days[0]["processed"] == 0


def test_percentiles_from_power_of_two_buckets():
    assert ops.percentile({}, 0.5) is None
    # 100 runs between 8 and 16 ms
    assert 8 <= ops.percentile({4: 100}, 0.5) <= 16
    # 90 fast (under 1 ms) and 10 slow (512..1024 ms): p50 fast, p95 slow
    buckets = {0: 90, 10: 10}
    assert ops.percentile(buckets, 0.5) < 1
    assert 512 <= ops.percentile(buckets, 0.95) <= 1024


def test_job_metrics_read_the_workers_minute_hashes(client):
    qk = get_keys().queue("default")
    now = time.time()
    client.hset(
        qk.metrics(utc_minute(now)),
        mapping={"app.send|count": 10, "app.send|failed": 1, "app.send|ms": 200, "app.send|b5": 10},
    )
    client.hset(qk.metrics(utc_minute(now - 120)), mapping={"app.send|count": 5, "app.send|b5": 5})
    client.hset(qk.metrics(utc_minute(now)), mapping={"app.other|count": 1, "app.other|b0": 1})
    client.sadd(get_keys().queues, "default")
    metrics = ops.job_metrics(minutes=10)
    assert [m.name for m in metrics] == ["app.send", "app.other"]
    send = metrics[0]
    assert send.count == 15 and send.failed == 1 and send.mean_ms == pytest.approx(200 / 15)
    assert 16 <= send.p50_ms <= 32 and 16 <= send.p95_ms <= 32
    assert len(send.series) == 10 and send.series[-1][1:] == (10, 1)
    assert sum(c for _, c, _ in send.series) == 15
