"""The bakery's own tests, with steep's pytest plugin (installed with steep):

    cd examples/flask_app && pytest

`steep_fake` checks what a request enqueues, `steep_inline` runs jobs at once, and `steep`
runs them on a private Valkey server that the plugin starts for the session.
"""

from __future__ import annotations

import pytest
from bakery import create_app
from bakery.jobs import bake
from flask import Flask


@pytest.fixture
def app() -> Flask:
    return create_app({"TESTING": True})


def test_ordering_a_loaf_enqueues_bake(app, steep_fake):
    response = app.test_client().post("/bake", json={"loaf": "rye"})
    assert response.status_code == 202
    (queued,) = steep_fake.assert_enqueued(bake, "rye")
    assert response.get_json() == {"job": queued.id}


def test_the_loaf_is_baked_in_the_app_context(app, steep_inline):
    job = bake.enqueue("spelt")  # runs at once, inside the app context, as on a worker
    assert job.result().startswith("Corner Bakery baked a spelt loaf")


def test_an_order_is_baked_by_a_worker(app, steep):
    web = app.test_client()
    job_id = web.post("/bake", json={"loaf": "sourdough"}).get_json()["job"]
    assert web.get(f"/jobs/{job_id}").get_json()["status"] == "queued"
    assert steep.drain() == 1  # a real worker, in this process, on the private server
    answer = web.get(f"/jobs/{job_id}").get_json()
    assert answer["status"] == "succeeded"
    assert answer["result"].startswith("Corner Bakery baked a sourdough loaf")
