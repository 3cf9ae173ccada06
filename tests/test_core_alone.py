"""The core knows no feature: with none registered it still enqueues, runs, retries and
settles jobs (tests/test_layers.py checks the same from the imports)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from steep import JobFailed, JobStatus, context, hooks, options, signature
from steep.connection import get_keys
from steep.job import decode_envelope
from steep.registry import job


@pytest.fixture
def no_features() -> Iterator[None]:
    """Unregister every feature (enqueue side, run side, context, composer) for one test."""
    saved: list[tuple[Any, str, Any]] = [
        (hooks, "_HOOKS", list(hooks._HOOKS)),
        (hooks, "_JOB_HOOKS", list(hooks._JOB_HOOKS)),
        (options, "_FEATURES", list(options._FEATURES)),
        (options, "_OPTIONS", dict(options._OPTIONS)),
        (options, "_KEYWORDS", dict(options._KEYWORDS)),
        (context, "_progress_reporter", context._progress_reporter),
        (signature, "_composer", signature._composer),
    ]
    for module, name, value in saved:
        setattr(module, name, type(value)() if isinstance(value, list | dict) else None)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


_attempts: list[int] = []


def test_nothing_is_registered_and_feature_options_are_unknown(no_features):
    assert hooks.registered() == () and options.registered() == ()
    with pytest.raises(TypeError, match="unknown job option 'unique'"):
        job(unique=True)
    with pytest.raises(RuntimeError, match="progress reports need"):
        context.JobContext("id", "name", "default", 1, "w").progress(0.5)


def test_core_alone_enqueues_runs_retries_and_settles(no_features, client, run_worker):
    @job(name="tests.core_alone.add", result_ttl=60)
    def add(a: int, b: int) -> int:
        return a + b

    @job(name="tests.core_alone.flaky", retries=3, backoff=0.05, result_ttl=60)
    def flaky() -> int:
        ctx = context.current_job()
        assert ctx is not None
        _attempts.append(ctx.attempt)
        if ctx.attempt <= 2:
            raise ConnectionError(f"attempt {ctx.attempt} fails on purpose")
        return ctx.attempt

    @job(name="tests.core_alone.broken", retries=1, backoff=0.05, result_ttl=60)
    def broken() -> None:
        raise ValueError("always")

    _attempts.clear()
    added, retried, dead = add.enqueue(2, 3), flaky.enqueue(), broken.enqueue()
    qk = get_keys().queue("default")
    stored = decode_envelope(client.hget(qk.jobs, added.id))
    # no feature wrote into the envelope
    assert (stored.unique_key, stored.expires_at, stored.priority, stored.meta) == (
        None,
        None,
        0,
        {},
    )

    run_worker()

    assert added.result(timeout=5) == 5
    assert retried.result(timeout=5) == 3 and _attempts == [1, 2, 3]
    with pytest.raises(JobFailed, match="always"):
        dead.result(timeout=5)
    assert dead.status is JobStatus.DEAD
    assert int(client.hget(qk.stats, "processed")) == 2
    assert int(client.hget(qk.stats, "failed")) == 4  # two of flaky's, both of broken's
