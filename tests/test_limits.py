"""Rate limits (steep.features.limits): ceilings held across real worker processes, leases
of killed workers expiring, deferral without spent attempts or busy loops."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from steep import ops
from steep.cli import main
from steep.connection import close_async_client, get_keys
from steep.features import limits
from steep.job import decode_envelope
from tests import jobs
from tests.conftest import wait_for


@pytest.fixture(autouse=True)
def fresh_records(client) -> Iterator[None]:
    # each test flushes Redis: let this process record its limiters again
    limits._recorded.clear()
    yield


def _ints(client, key: str) -> list[int]:
    return [int(v) for v in client.lrange(key, 0, -1)]


def _floats(client, key: str) -> list[float]:
    return sorted(float(v) for v in client.lrange(key, 0, -1))


def _info(name: str) -> ops.LimitInfo:
    return next(info for info in ops.limits() if info.name == name)


# -- declaring ----------------------------------------------------------------------------


def test_limiters_reject_bad_definitions():
    with pytest.raises(ValueError, match="invalid limiter name"):
        limits.Concurrency("a:b", 1)
    with pytest.raises(ValueError, match="limit must be a whole number"):
        limits.Window("zero", 0)
    with pytest.raises(ValueError, match="lease must be"):
        limits.Concurrency("short-lease", 1, lease=0.01)
    with pytest.raises(ValueError, match="already declared"):
        limits.Concurrency("test-solo", 2)
    # the same definition again is the same limiter
    assert limits.Concurrency("test-solo", 1, lease=1.5, backoff=0.2, max_backoff=2.0)
    with pytest.raises(ValueError, match=r"must be limiters of steep\.features\.limits"):
        jobs.add.options(limits=["test-solo"])


# -- many worker processes ------------------------------------------------------------------


def test_concurrency_ceiling_holds_across_worker_processes(client, worker_cli):
    limit = jobs.exports_limit.limit
    jobs.limited_export.enqueue_many([(0.3,)] * 30)
    cli = worker_cli("worker", "tests.jobs", "-p", "2", "-c", "10")
    wait_for(
        lambda: client.get("test:export:done") == b"30",
        timeout=90,
        message=f"30 limited jobs; worker output:\n{cli.text[-3000:]}",
    )
    assert int(client.get("test:{export}:max")) == limit  # reached, never exceeded
    # refusals were deferrals: no attempt spent, nothing failed
    assert _ints(client, "test:export:attempts") == [1] * 30
    assert sum(_ints(client, "test:export:deferred")) > 0
    qk = get_keys().queue("default")
    assert client.hget(qk.stats, "failed") is None
    wait_for(lambda: client.hget(qk.stats, "processed") == b"30", message="all settled")
    info = _info("test-exports")
    assert (info.kind, info.limit, info.in_use) == ("concurrency", limit, 0)
    assert info.admitted == 30 and info.deferred == sum(_ints(client, "test:export:deferred"))


def test_window_ceiling_holds_in_every_sliding_period(client, worker_cli):
    limit, per = jobs.api_limit.limit, jobs.api_limit.per
    jobs.limited_call.enqueue_many([()] * 15)
    cli = worker_cli("worker", "tests.jobs", "-p", "2", "-c", "10")
    wait_for(
        lambda: client.llen("test:api:starts") == 15,
        timeout=60,
        message=f"15 limited calls; worker output:\n{cli.text[-3000:]}",
    )
    starts = _floats(client, "test:api:starts")
    # Admissions are exact in server time; a start is recorded a moment after its
    # admission (at most `lag` later), so any span of per - lag holds <= limit starts.
    lag = 0.25
    for i, t in enumerate(starts):
        inside = [s for s in starts[i:] if s < t + per - lag]
        assert len(inside) <= limit, f"{len(inside)} starts within {per - lag} s of {t}"
    # 15 admissions at 5 per second need at least two full periods
    assert starts[-1] - starts[0] >= 2 * per - lag
    assert _ints(client, "test:api:attempts") == [1] * 15
    assert client.hget(get_keys().queue("default").stats, "failed") is None


def test_lease_of_a_killed_worker_expires_and_other_jobs_proceed(client, worker_cli):
    lease = jobs.solo_limit.lease
    # the holder runs on a queue the second worker does not serve, so only the
    # lease's expiry (not a rerun releasing it) can let the other jobs through
    doomed = worker_cli("worker", "tests.jobs", "-q", "held", "-p", "1", "-c", "4")
    holder = jobs.solo_hold.options(queue="held").enqueue(60)
    wait_for(lambda: client.llen("test:solo-hold:starts") == 1, timeout=30, message="holder")
    assert _info("test-solo").holders == [holder.id]
    doomed.kill_tree()  # SIGKILL the supervisor and its worker: nothing is released
    killed_at = time.time()
    quick = jobs.solo_quick.enqueue_many([()] * 3)
    assert _info("test-solo").in_use == 1  # the dead worker's lease still counts
    worker_cli("worker", "tests.jobs", "-q", "default", "-p", "1", "-c", "4")
    wait_for(lambda: client.llen("test:solo-quick:starts") == 3, timeout=30, message="quick")
    first = _floats(client, "test:solo-quick:starts")[0]
    # renewed every lease / 3 until the kill, so it ran out no sooner than 2/3 lease after
    assert first >= killed_at + lease * 2 / 3 - 0.05
    assert _ints(client, "test:solo-quick:attempts") == [1, 1, 1]
    wait_for(lambda: all(h.status is None for h in quick), message="quick jobs settled")


# -- deferral ---------------------------------------------------------------------------------


def test_deferral_backs_off_and_leaves_the_worker_free(client, run_worker):
    hold_for = 2.5  # longer than the limiter's lease: the holder's lease must be renewed
    jobs.solo_hold.enqueue(60)  # held until the test lets it go
    run_worker(burst=False)
    wait_for(lambda: client.llen("test:solo-hold:starts") == 1, message="holder")
    held_from = _floats(client, "test:solo-hold:starts")[0]
    waiting = jobs.solo_quick.enqueue()
    # the worker is not stuck on the limited job: an unlimited one runs meanwhile
    assert jobs.add.enqueue(2, 3).result(timeout=15) == 5
    info = _info("test-solo")
    assert info.in_use == 1 and info.limit == 1
    code, out = _cli("limits", "--json")
    assert code == 0, out
    listed = {item["name"]: item for item in json.loads(out)}
    assert listed["test-solo"]["in_use"] == 1 and listed["test-solo"]["kind"] == "concurrency"
    code, out = _cli("limits")
    assert code == 0 and "test-solo" in out and "concurrency" in out
    wait_for(lambda: _info("test-solo").deferred >= 1, message="the waiter deferred")
    wait_for(lambda: time.time() >= held_from + hold_for, message=f"a hold of {hold_for} s")
    assert client.llen("test:solo-quick:starts") == 0  # it waited for the holder
    client.rpush("test:gate:solo-hold", "go")
    wait_for(lambda: client.llen("test:solo-quick:starts") == 1, timeout=15, message="waiter")
    # the holder ran longer than its lease: renewed, it kept its slot to the end
    waited = _floats(client, "test:solo-quick:starts")[0] - held_from
    assert waited >= hold_for > jobs.solo_limit.lease
    deferrals = _ints(client, "test:solo-quick:deferred")[0]
    # backoff 0.2 s doubling (jittered down to half), capped at 2 s: about five deferrals
    # in a 2.5 s hold, and at most what fits if every back-off were its shortest; a busy
    # loop would be hundreds
    assert 1 <= deferrals <= _most_deferrals(waited, jobs.solo_limit)
    assert _info("test-solo").deferred == deferrals
    assert _ints(client, "test:solo-quick:attempts") == [1]
    wait_for(lambda: waiting.status is None, message="the waiter settled")


def _most_deferrals(span: float, limiter: limits.Concurrency) -> int:
    """How many deferrals fit in `span` s if every back-off is jittered to its shortest
    (half its ceiling), the first one at once."""
    count, at = 1, 0.0
    while True:
        at += min(limiter.max_backoff, limiter.backoff * 2 ** (count - 1)) / 2
        if at > span:
            return count
        count += 1


def test_options_limits_reach_the_worker_and_can_lift_a_limit(client, run_worker):
    run_worker(burst=False)
    qk = get_keys().queue("default")
    with jobs.solo_limit.acquire(timeout=1):
        limited = jobs.add.options(limits=[jobs.solo_limit], result_ttl=60).enqueue(1, 1)
        unlimited = jobs.solo_quick.options(limits=()).enqueue()
        wait_for(lambda: client.llen("test:solo-quick:starts") == 1, message="unlimited")
        wait_for(
            lambda: decode_envelope(client.hget(qk.jobs, limited.id)).meta.get("deferred"),
            message="the limited job deferred",
        )
        assert client.zscore(qk.scheduled, limited.id) is not None
    assert limited.result(timeout=10) == 2
    assert unlimited.status is None


# -- direct use ---------------------------------------------------------------------------------


def test_acquire_waits_then_times_out(client):
    solo = jobs.solo_limit
    with solo.acquire(timeout=1):
        assert _info("test-solo").in_use == 1
        started = time.monotonic()
        with pytest.raises(limits.LimitTimeout, match="test-solo"), solo.acquire(timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    with solo.acquire(timeout=0.5):  # given back on exit
        pass
    assert _info("test-solo").in_use == 0


def test_acquire_holds_its_lease_past_the_lease_length(client):
    solo = jobs.solo_limit
    with solo.acquire():
        # must NOT expire while held: renewed every lease / 3
        time.sleep(solo.lease * 1.5)
        assert _info("test-solo").in_use == 1


def test_aacquire_and_window_acquire(client):
    async def main_() -> None:
        async with jobs.solo_limit.aacquire(timeout=1):
            with pytest.raises(limits.LimitTimeout):
                async with jobs.solo_limit.aacquire(timeout=0.2):
                    pass
        async with jobs.solo_limit.aacquire(timeout=0.5):
            pass
        await close_async_client()

    asyncio.run(main_())
    api = jobs.api_limit
    started = time.monotonic()
    for _ in range(api.limit + 1):
        with api.acquire(timeout=5):
            pass
    # the sixth waited for the first to leave the window
    assert time.monotonic() - started >= api.per * 0.9
    info = _info("test-api")
    assert info.admitted == api.limit + 1 and info.deferred >= 1


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    # a success's stdout alone: a worker running in this process may log to stderr meanwhile
    return result.exit_code, (result.output if result.exit_code else result.stdout)


def test_dashboard_lists_limiters(client, monkeypatch):
    from starlette.testclient import TestClient

    from steep.web import create_app

    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    web = TestClient(create_app(), client=("127.0.0.1", 50000))
    assert "No limiter has been used yet" in web.get("/limits").text
    with jobs.solo_limit.acquire(timeout=1):
        page = web.get("/limits")
        assert page.status_code == 200
        assert "test-solo" in page.text and "full" in page.text and "direct:" in page.text
        listed = {item["name"]: item for item in web.get("/api/limits").json()}
        assert listed["test-solo"]["in_use"] == 1 and listed["test-solo"]["limit"] == 1
    assert ">Limits<" in web.get("/").text  # in the navigation


def test_example_runs_as_documented(client, server):
    from tests.conftest import ROOT, run_example

    here = ROOT / "examples" / "limits"
    lines = run_example(
        client, server, here, "enqueue.py", processes=2, worker_args=("-c", "10"), timeout=120
    )
    calls, busiest = (int(n) for n in re.findall(r"\b\d+\b", lines[0])[:2])
    assert calls == 25 and busiest <= 10, lines[0]
    assert lines[1].startswith("9 exports, at most ") and int(lines[1].split()[4]) <= 3
    assert lines[2] == "token refreshed; catalogue: page 0 synced"
    assert lines[3:] == [
        "exports: concurrency, limit 3, deferred True",
        "partner-api: window, limit 10, deferred True",
    ]


def test_graceful_stop_gives_back_the_leases_of_cancelled_jobs(client, worker_cli):
    cli = worker_cli("worker", "tests.jobs", "-p", "1", "-c", "4")
    jobs.solo_hold.enqueue(60)
    wait_for(lambda: client.llen("test:solo-hold:starts") == 1, timeout=30, message="holder")
    cli.signal(signal.SIGTERM)
    assert cli.wait(30) == 0
    # renewed until the end, the lease would still run for a second had it not been
    # given back; checked at once
    assert _info("test-solo").holders == []


def test_a_refused_job_holds_none_of_its_other_limits(client, run_worker):
    for _ in range(jobs.api_limit.limit):  # the window is used up for a second
        with jobs.api_limit.acquire(timeout=1):
            pass
    run_worker(burst=False)
    both = jobs.add.options(limits=[jobs.api_limit, jobs.solo_limit], result_ttl=60)
    handle = both.enqueue(2, 2)
    qk = get_keys().queue("default")
    wait_for(
        lambda: decode_envelope(client.hget(qk.jobs, handle.id)).meta.get("deferred"),
        message="the job deferred by the window",
    )
    # the concurrency slot was taken first, then given back when the window refused
    solo = _info("test-solo")
    assert solo.admitted >= 1 and solo.holders == []
    assert handle.result(timeout=10) == 4  # and it runs once the window has room
    assert _info("test-solo").holders == []
