"""Per-minute metrics per job name."""

from __future__ import annotations

from steep.connection import get_keys
from steep.worker.metrics import bucket_of, bucket_upper_ms, minute_of
from tests import jobs
from tests.conftest import wait_for


def test_buckets():
    assert bucket_of(0.2) == 0 and bucket_upper_ms(0) == 1
    assert bucket_of(1) == 1 and bucket_of(1.9) == 1 and bucket_upper_ms(1) == 2
    assert bucket_of(300) == 9 and 256 <= 300 < bucket_upper_ms(9)


def test_worker_records_counts_failures_and_histogram(client, run_worker):
    import time

    jobs.add.enqueue_many([(i, i) for i in range(20)])
    jobs.always_fails.options(retries=0).enqueue("metrics")
    minute = minute_of(time.time())
    run_worker()
    key = get_keys().queue("default").metrics(minute)
    wait_for(lambda: client.hget(key, "tests.jobs.add|count") is not None, message="flush")
    h = {k.decode(): int(v) for k, v in client.hgetall(key).items()}
    if h.get("tests.jobs.add|count", 0) < 20:  # the run straddled a minute boundary
        later = get_keys().queue("default").metrics(minute_of(time.time()))
        for k, v in client.hgetall(later).items():
            h[k.decode()] = h.get(k.decode(), 0) + int(v)
    assert h["tests.jobs.add|count"] == 20
    assert "tests.jobs.add|failed" not in h
    assert sum(v for k, v in h.items() if k.startswith("tests.jobs.add|b")) == 20
    assert h["tests.jobs.always_fails|count"] == 1 and h["tests.jobs.always_fails|failed"] == 1
    assert 0 < client.ttl(key) <= 48 * 3600
