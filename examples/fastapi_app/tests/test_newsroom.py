"""The newsroom's own tests, with steep's pytest plugin (installed with steep):

    cd examples/fastapi_app && pytest

`steep_fake` checks what a request enqueues; `steep` runs the jobs on a private Valkey
server that the plugin starts for the session.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from newsroom.jobs import publish
from newsroom.main import app


def test_publishing_enqueues_the_job(steep_fake):
    with TestClient(app) as web:
        response = web.post("/articles/rates-rise/publish")
    assert response.status_code == 202
    (queued,) = steep_fake.assert_enqueued(publish, "rates-rise")
    assert response.json() == {"job": queued.id}


def test_an_article_is_published_by_a_worker(steep):
    with TestClient(app) as web:
        job_id = web.post("/articles/snow-day/publish").json()["job"]
        assert web.get(f"/jobs/{job_id}").json() == {"result": None}  # not run yet
        assert steep.drain() == 1
        assert web.get(f"/jobs/{job_id}", params={"wait": 5}).json() == {
            "result": "published snow-day"
        }
