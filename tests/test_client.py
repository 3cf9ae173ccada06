"""Enqueueing: envelopes, options, encoding errors, many-at-once, async."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from steep import Job, JobStatus, job
from steep.connection import get_keys, reset_clients
from steep.job import decode_envelope
from steep.settings import configure
from tests import jobs
from tests.conftest import cluster_skip


def envelope_of(client, handle: Job):
    raw = client.hget(get_keys().queue(handle.queue).jobs, handle.id)
    assert raw is not None, f"job {handle.id} has no envelope"
    return decode_envelope(raw)


def test_enqueue_stores_envelope_and_queues_id(client):
    handle = jobs.add.enqueue(2, 3)
    assert isinstance(handle, Job)
    qk = get_keys().queue("default")
    assert client.lrange(qk.queued, 0, -1) == [handle.id.encode()]
    env = envelope_of(client, handle)
    assert (env.name, env.args, env.queue, env.retries) == ("tests.jobs.add", [2, 3], "default", 5)
    assert env.result_ttl == 60
    assert handle.status is JobStatus.QUEUED
    assert client.sismember(get_keys().queues, "default")


def test_calling_the_function_runs_it_inline(client):
    assert jobs.add(2, 3) == 5
    assert client.llen(get_keys().queue("default").queued) == 0


def test_options_override_per_call(client):
    handle = jobs.add.options(queue="critical", retries=0, timeout=5).enqueue(1, 1)
    assert handle.queue == "critical"
    env = envelope_of(client, handle)
    assert (env.queue, env.retries, env.timeout) == ("critical", 0, 5)
    # the defaults are unchanged
    assert jobs.add.enqueue(1, 1).queue == "default"


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="retries must be >= 0"):
        jobs.add.options(retries=-1)
    with pytest.raises(ValueError, match="invalid queue name"):
        jobs.add.options(queue="a:b")
    with pytest.raises(TypeError):
        jobs.add.options(colour="red")


def test_unencodable_argument_names_the_argument(client):
    class Opaque:
        pass

    with pytest.raises(TypeError) as info:
        jobs.add.enqueue(1, Opaque())
    message = str(info.value)
    assert "argument #1 (positional)" in message and "Opaque" in message
    assert "tests.jobs.add" in message
    with pytest.raises(TypeError, match="argument 'b' of type Opaque"):
        jobs.add.enqueue(1, b=Opaque())
    # nothing was queued
    assert client.llen(get_keys().queue("default").queued) == 0


def test_rich_types_are_encoded_without_pickle(client):
    @dataclasses.dataclass
    class P:
        x: int

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.uuid4()
    handle = jobs.typed.enqueue(when, date(2026, 1, 2), ident, Decimal("9.99"), P(3))
    env = envelope_of(client, handle)
    assert env.args[0] == "2026-01-02T03:04:05Z"
    assert env.args[2] == str(ident)
    assert env.args[3] == "9.99"
    assert env.args[4] == {"x": 3}


def test_enqueue_in_and_at_schedule(client):
    qk = get_keys().queue("default")
    a = jobs.add.enqueue_in(60, 1, 2)
    b = jobs.add.enqueue_in(timedelta(minutes=2), 1, 2)
    when = datetime.now(UTC) + timedelta(hours=1)
    c = jobs.add.enqueue_at(when, 1, 2)
    assert client.llen(qk.queued) == 0
    scores = dict(client.zrange(qk.scheduled, 0, -1, withscores=True))
    assert set(scores) == {a.id.encode(), b.id.encode(), c.id.encode()}
    assert abs(scores[c.id.encode()] / 1000 - when.timestamp()) < 0.01
    assert a.status is JobStatus.SCHEDULED


def test_enqueue_at_rejects_naive_datetime(client):
    with pytest.raises(ValueError, match="aware datetime"):
        jobs.add.enqueue_at(datetime.now(), 1, 2)


def test_enqueue_in_the_past_queues_now(client):
    handle = jobs.add.enqueue_in(-5, 1, 2)
    assert handle.status is JobStatus.QUEUED


@cluster_skip("it counts the commands of one server (INFO commandstats)")
def test_enqueue_many_one_round_trip(client):
    client.config_resetstat()
    handles = jobs.add.enqueue_many([(i, i) for i in range(1000)] + [((1,), {"b": 2})])
    assert len(handles) == 1001 and len({h.id for h in handles}) == 1001
    qk = get_keys().queue("default")
    assert client.llen(qk.queued) == 1001
    assert client.hlen(qk.jobs) == 1001
    stats = client.info("commandstats")
    # one SADD for the new queue, one EVALSHA (maybe a SCRIPT LOAD on a fresh server)
    assert stats["cmdstat_evalsha"]["calls"] <= 2
    assert envelope_of(client, handles[-1]).kwargs == {"b": 2}


def test_enqueue_many_large_is_chunked(client):
    handles = jobs.record.enqueue_many([("big", i) for i in range(12_000)])
    assert client.llen(get_keys().queue("default").queued) == 12_000
    assert len({h.id for h in handles}) == 12_000


def test_job_ids_sort_by_time(client):
    ids = [jobs.add.enqueue(1, 1).id for _ in range(20)]
    assert ids == sorted(ids)


def test_async_enqueue_variants(client):
    async def main():
        a = await jobs.add.aenqueue(1, 2)
        b = await jobs.add.aenqueue_in(30, 1, 2)
        c = await jobs.add.aenqueue_at(datetime.now(UTC) + timedelta(seconds=30), 1, 2)
        many = await jobs.add.aenqueue_many([(i, i) for i in range(50)])
        from steep.connection import get_async_client

        await get_async_client().aclose()
        return a, b, c, many

    a, b, c, many = asyncio.run(main())
    assert a.status is JobStatus.QUEUED
    assert b.status is JobStatus.SCHEDULED and c.status is JobStatus.SCHEDULED
    assert len(many) == 50
    assert client.llen(get_keys().queue("default").queued) == 51


def test_explicit_job_name(client):
    @job(name="reports.daily", queue="reports")
    def daily() -> None: ...

    handle = daily.enqueue()
    assert envelope_of(client, handle).name == "reports.daily"
    assert handle.queue == "reports"


def test_status_of_unknown_job_is_none(client):
    assert Job("nope", "default").status is None


def test_result_waits_longer_than_the_socket_timeout(client, server):
    # redis-py's default socket timeout (5 s, which the embedded server's client keeps): a
    # longer wait for a result must end at its own deadline with steep's TimeoutError, not
    # read as a dead connection (retried, then raised as a Redis error much later).
    configure(redis_url=f"{server.url}?socket_timeout=5")
    reset_clients()
    handle = jobs.sleepy.enqueue(1.0)  # no worker runs: it never finishes
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 6 s"):
        handle.result(timeout=6)
    assert 6 <= time.monotonic() - started < 8


def test_result_of_a_job_that_keeps_none_says_so_at_once(client):
    handle = jobs.record.enqueue("quiet", 1)  # no result_ttl
    assert handle.keeps_result is False
    with pytest.raises(ValueError, match=r"keeps no result.*options\(result_ttl=300\)"):
        handle.result(timeout=30)
    with pytest.raises(ValueError, match="keeps no result"):
        asyncio.run(handle.aresult(timeout=30))
    kept = jobs.record.options(result_ttl=60).enqueue("quiet", 2)
    assert kept.keeps_result is True
    assert [j.keeps_result for j in jobs.record.enqueue_many([("q", 3)])] == [False]
    assert Job(handle.id, handle.queue).keeps_result is None  # a handle made from an id


def test_a_payload_above_max_payload_is_refused_with_nothing_sent(client):
    from steep import PayloadTooLarge
    from steep.settings import configure

    big = "x" * (3 * 1024 * 1024)  # 3 MB, accepted without a word before
    with pytest.raises(PayloadTooLarge) as caught:
        jobs.record.enqueue(big, 1)
    message = str(caught.value)
    assert message.startswith("cannot enqueue tests.jobs.record: its payload is 3,145,")
    assert "above max_payload (1,048,576 bytes)" in message and "a reference" in message
    assert isinstance(caught.value, ValueError)
    with pytest.raises(PayloadTooLarge):
        jobs.record.enqueue_many([("small", 1), (big, 2)])  # the whole call, before any push
    with pytest.raises(PayloadTooLarge):
        asyncio.run(jobs.record.aenqueue(big, 3))
    assert client.hlen(get_keys().queue("default").jobs) == 0  # nothing was sent
    configure(max_payload=100)
    with pytest.raises(PayloadTooLarge, match=r"above max_payload \(100 bytes\)"):
        jobs.record.enqueue("y" * 100, 4)
    configure(max_payload=0)  # no limit
    assert jobs.record.enqueue(big, 5).status == "queued"
