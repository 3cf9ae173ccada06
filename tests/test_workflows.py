"""Signatures, chains and groups (steep.features.batches.workflow), run by a real worker."""

from __future__ import annotations

import json

import pytest

from steep import Signature, chain, chord, group, ops
from tests import batch_jobs as bj
from tests.conftest import wait_for
from tests.test_batches import count, state_is


def test_signatures_are_small_json_and_validated():
    sig = bj.times.s(3, factor=2)
    assert sig == Signature.from_dict(json.loads(json.dumps(sig.to_dict())))
    assert (sig.name, sig.args, sig.kwargs) == ("tests.batch_jobs.times", (3,), {"factor": 2})
    assert sig.options["queue"] == "default" and not sig.immutable
    assert bj.times.si(1, 2).immutable
    assert sig.set(queue="low").options["queue"] == "low" and sig.options["queue"] == "default"
    with pytest.raises(TypeError, match="carries only"):
        sig.set(backoff=3)
    with pytest.raises(ValueError, match="invalid queue name"):
        sig.set(queue="a b")
    with pytest.raises(TypeError, match=r"argument #0 .* cannot be encoded"):
        bj.add_one.s(object())


def test_chain_passes_each_result_to_the_next_step(client, run_worker):
    c = chain(bj.add_one.s(1), bj.add_one.s(), bj.times.s(10)) | bj.step_note.s("end")
    b = c.enqueue(description="arith")
    run_worker(burst=False)
    s = state_is(b, "succeeded")
    assert (s.kind, s.steps, s.total, s.succeeded) == ("chain", 4, 4, 4)
    assert b.results() == [2, 3, 30, "noted"]
    assert bj.notes(client, "steps") == [[30, "end"]]


def test_an_immutable_step_ignores_the_previous_result(client, run_worker):
    b = chain(bj.add_one.s(1), bj.step_note.si("fixed")).enqueue()
    run_worker(burst=False)
    state_is(b, "succeeded")
    assert bj.notes(client, "steps") == [["fixed"]]


def test_a_dead_step_stops_the_chain_until_it_is_retried(client, run_worker):
    client.set("test:flag", 1)
    b = chain(
        bj.add_one.s(1),
        bj.fails_while_flagged.si("flag"),
        bj.step_note.s(),
    ).enqueue(on_complete=bj.callback.s("complete"))
    run_worker(burst=False)
    wait_for(lambda: count(client, "cb:complete") == 1, message="on_complete")
    s = state_is(b, "failed")
    # two of three steps ran; the third was never enqueued
    assert (s.steps, s.total, s.succeeded, s.failed) == (3, 2, 1, 1)
    assert bj.notes(client, "steps") == [] and ops.queue("default").size == 0
    # retried from the dead set, the step succeeds and the chain goes on
    client.delete("test:flag")
    [dead_id] = s.failed_ids
    wait_for(
        lambda: (j := ops.get_job("default", dead_id)) is not None and j.state == "dead",
        message="the failed step in the dead set",
    )
    assert ops.retry_jobs("default", s.failed_ids) == 1
    s = state_is(b, "succeeded")
    assert (s.total, s.succeeded, s.failed) == (3, 3, 0)
    assert bj.notes(client, "steps") == [["ok"]]
    assert count(client, "cb:complete") == 1


def test_group_then_callback_gets_the_results_in_order(client, run_worker):
    g = group([bj.times.s(i, 2) for i in range(10)]) | bj.collect.s("g")
    b = g.enqueue(description="doubles")
    run_worker(burst=False, concurrency=5)
    wait_for(lambda: count(client, "cb:g") == 1, message="the group's callback")
    assert bj.notes(client, "cbs:g") == [[2 * i for i in range(10)]]
    assert b.status().kind == "group" and b.results() == [2 * i for i in range(10)]


def test_chord_is_group_then_callback(client, run_worker):
    b = chord([bj.add_one.s(i) for i in range(3)], bj.collect.s("c")).enqueue()
    run_worker(burst=False)
    wait_for(lambda: count(client, "cb:c") == 1, message="the chord's callback")
    assert bj.notes(client, "cbs:c") == [[1, 2, 3]]
    assert state_is(b, "succeeded").total == 3


def test_the_batches_example_runs_as_written(client, server):
    from tests.conftest import ROOT, run_example

    where = ROOT / "examples" / "batches"
    lines = run_example(client, server, where, "run.py")
    assert lines == [
        "import 5 rows: 5 of 5 succeeded, 0 dead",
        "succeeded HELLO FROM HTTPS://EXAMPLE.COM!!",
        "[1, 2, 3] -> 6 words",
        "group succeeded: 3 of 3",
    ]
