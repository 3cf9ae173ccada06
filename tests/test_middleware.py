"""Middleware around enqueue and execute: meta carried to the run, context, errors."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import pytest

from steep import middleware
from steep.connection import get_keys
from steep.job import decode_envelope
from steep.settings import ConfigError, configure
from tests import jobs

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
seen: list[tuple[str, str, str]] = []


class RequestId(middleware.Middleware):
    """Carries the enqueuing request's id into the job (what a logging context does)."""

    @contextlib.contextmanager
    def enqueue(self, job) -> Iterator[None]:
        job.meta["request_id"] = request_id.get()
        yield

    @contextlib.contextmanager
    def execute(self, job) -> Iterator[None]:
        token = request_id.set(job.meta.get("request_id", "-"))
        try:
            yield
        except Exception as exc:
            seen.append((job.name, "error", type(exc).__name__))
            raise
        else:
            seen.append((job.name, "ok", request_id.get()))
        finally:
            request_id.reset(token)


@pytest.fixture
def installed(settings) -> Iterator[None]:
    seen.clear()
    middleware.add(RequestId())
    yield
    middleware.clear()


def test_meta_travels_from_enqueue_to_sync_and_async_runs(client, run_worker, installed):
    token = request_id.set("req-42")
    try:
        a = jobs.read_meta.enqueue("request_id")
        b = jobs.async_read_meta.enqueue("request_id")
        many = jobs.read_meta.enqueue_many([("request_id",), ("request_id",)])
    finally:
        request_id.reset(token)
    stored = decode_envelope(client.hget(get_keys().queue("default").jobs, a.id))
    assert stored.meta == {"request_id": "req-42"}
    run_worker()
    assert a.result(timeout=1) == "req-42"
    assert b.result(timeout=1) == "req-42"
    assert [h.result(timeout=1) for h in many] == ["req-42", "req-42"]
    # the execute hook ran around each job and its context was visible inside it
    assert sorted(seen) == sorted(
        [(jobs.read_meta.name, "ok", "req-42")] * 3 + [(jobs.async_read_meta.name, "ok", "req-42")]
    )


def test_the_jobs_exception_passes_through_execute(client, run_worker, installed):
    jobs.tagged_fail.enqueue("boom")
    run_worker()
    assert seen == [(jobs.tagged_fail.name, "error", "ValueError")]


def test_a_refusing_enqueue_hook_adds_nothing(client, settings):
    class Refuse(middleware.Middleware):
        @contextlib.contextmanager
        def enqueue(self, job) -> Iterator[None]:
            raise PermissionError(f"{job.name} not allowed")
            yield

    middleware.add(Refuse())
    try:
        with pytest.raises(PermissionError, match="not allowed"):
            jobs.add.enqueue(1, 2)
    finally:
        middleware.clear()
    assert client.hlen(get_keys().queue("default").jobs) == 0


def test_middleware_named_in_settings(client, run_worker, settings):
    configure(middleware=["tests.test_middleware:RequestId"])
    seen.clear()
    handle = jobs.read_meta.enqueue("request_id")
    run_worker()
    assert handle.result(timeout=1) == "-"
    assert seen == [(jobs.read_meta.name, "ok", "-")]


def test_bad_middleware_settings_say_what_is_wrong(settings):
    with pytest.raises(ConfigError, match="module:attribute"):
        configure(middleware=["not a path"])
    configure(middleware=["tests.nowhere:Thing"])
    with pytest.raises(ImportError, match=r"cannot load middleware 'tests.nowhere:Thing'"):
        middleware.chains()


def test_add_rejects_objects_without_hooks():
    with pytest.raises(TypeError, match="neither an enqueue"):
        middleware.add(object())
