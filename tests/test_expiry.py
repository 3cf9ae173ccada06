"""Expiring jobs (steep.features.expiry): dropped unrun when not started in time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from steep import JobFailed, JobStatus, ops
from steep.connection import get_keys
from steep.job import decode_envelope
from tests import jobs
from tests.conftest import ROOT, wait_for


def _envelope(client, handle):
    return decode_envelope(client.hget(get_keys().queue(handle.queue).jobs, handle.id))


def test_the_deadline_counts_from_the_run_time(client):
    before = time.time()
    now = jobs.add.options(expires_in=30).enqueue(1, 1)
    later = jobs.add.options(expires_in=30).enqueue_in(600, 1, 1)
    assert before + 30 <= _envelope(client, now).expires_at <= time.time() + 30
    assert before + 630 <= _envelope(client, later).expires_at <= time.time() + 630
    assert _envelope(client, jobs.add.enqueue(1, 1)).expires_at is None
    info = ops.get_job("default", now.id)
    assert info is not None and info.expires_at == _envelope(client, now).expires_at


def test_an_expired_job_is_discarded_by_the_worker(client, run_worker):
    late = jobs.add.options(expires_in=0.05).enqueue(2, 2)
    in_time = jobs.add.options(expires_in=60).enqueue(3, 3)
    deadline = _envelope(client, late).expires_at
    wait_for(lambda: time.time() > deadline + 0.01, message="the deadline to pass")
    run_worker()
    qk = get_keys().queue("default")
    assert in_time.result(timeout=1) == 6
    with pytest.raises(JobFailed, match="not started before it expired") as failed:
        late.result(timeout=1)
    assert failed.value.type == "steep.Expired"
    assert late.status is JobStatus.DEAD  # not run: not "succeeded", as ops and the CLI say
    assert ops.get_job("default", late.id).state == "dead"
    assert in_time.status is JobStatus.SUCCEEDED
    assert client.hexists(qk.jobs, late.id) == 0
    assert int(client.hget(qk.stats, "expired")) == 1
    assert int(client.hget(qk.stats, "processed")) == 1
    assert client.hget(qk.stats, "failed") is None


def test_an_expired_unique_job_frees_its_lock(client, run_worker):
    late = jobs.add.options(expires_in=0.05, unique=True).enqueue(5, 5)
    qk = get_keys().queue("default")
    lock = qk.unique(_envelope(client, late).unique_key)
    deadline = _envelope(client, late).expires_at
    wait_for(lambda: time.time() > deadline + 0.01, message="the deadline to pass")
    run_worker()
    assert int(client.hget(qk.stats, "expired")) == 1
    wait_for(lambda: not client.exists(lock), message="the lock released on expiry")
    assert not jobs.add.options(unique=True).enqueue(5, 5).duplicate


def test_expires_in_must_be_positive():
    with pytest.raises(ValueError, match="expires_in must be > 0 seconds"):
        jobs.add.options(expires_in=0)


def test_the_documented_example_runs(client, server):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "features" / "expiring_jobs.py")],
        env={**os.environ, "STEEP_REDIS_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["code sent to +15550101", "stale: steep.Expired"]
    assert int(client.hget(get_keys().queue("default").stats, "expired")) == 1
