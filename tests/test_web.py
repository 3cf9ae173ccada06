"""The dashboard over HTTP (Starlette's test client): pages, escaping, security,
read-only mode, path prefix, Prometheus."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from steep import ops
from steep.settings import ConfigError, configure, get_settings, load_settings
from steep.web import create_app
from steep.web.serve import CredentialsRequired, build_server
from tests import jobs

LOCAL = ("127.0.0.1", 50000)
PAGES = [
    "/",
    "/queues",
    "/queues/default",
    "/workers",
    "/limits",
    "/scheduled",
    "/retries",
    "/dead",
    "/stats",
]


@pytest.fixture
def web(client, monkeypatch):
    for name in ("STEEP_WEB_PASSWORD", "STEEP_WEB_TOKEN", "STEEP_WEB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    return TestClient(create_app(), client=LOCAL)


def _csrf(page_html: str) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', page_html)[1]


def test_every_page_renders_and_escapes_job_arguments(web, run_worker):
    jobs.add.enqueue("<script>alert(1)</script>", 2)
    jobs.add.enqueue_in(600, 1, 2)
    for state in ops.STATES:
        assert web.get(f"/queues/default?state={state}").status_code == 200
    for path in PAGES:
        response = web.get(path)
        assert response.status_code == 200, path
        assert "<script>alert" not in response.text
    listing = web.get("/queues/default").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    job_id = ops.list_jobs("default", "queued").jobs[0].id
    detail = web.get(f"/jobs/default/{job_id}").text
    assert "<script>alert" not in detail and "&lt;script&gt;" in detail
    assert web.get("/jobs/default/nope").status_code == 200  # a friendly "no such job"


def test_actions_need_the_csrf_token_and_same_origin(web):
    handle = jobs.add.enqueue(1, 2)
    page = web.get(f"/jobs/default/{handle.id}")
    token = _csrf(page.text)
    url = f"/jobs/default/{handle.id}/edit"
    form = {"arguments": '{"args": [5, 5]}', "next": f"/jobs/default/{handle.id}"}
    assert web.post(url, data=form).status_code == 403
    assert web.post(url, data={**form, "_csrf": "wrong"}).status_code == 403
    evil = web.post(url, data={**form, "_csrf": token}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    done = web.post(url, data={**form, "_csrf": token}, follow_redirects=False)
    assert done.status_code == 303 and "flash=Saved" in done.headers["location"]
    assert ops.get_job("default", handle.id).args == [5, 5]
    # a redirect target outside the dashboard is ignored
    away = web.post(url, data={**form, "_csrf": token, "next": "//evil.example/x"})
    assert away.url.host == "testserver"


def test_edit_with_bad_json_explains(web):
    handle = jobs.add.enqueue(1, 2)
    token = _csrf(web.get(f"/jobs/default/{handle.id}").text)
    page = web.post(
        f"/jobs/default/{handle.id}/edit",
        data={"arguments": "{nope", "_csrf": token, "next": f"/jobs/default/{handle.id}"},
    )
    assert "Not done: the arguments are not valid JSON" in page.text
    assert ops.get_job("default", handle.id).args == [1, 2]


def test_queue_and_bulk_actions(web, run_worker):
    for i in range(3):
        jobs.always_fails.options(retries=0).enqueue(f"w{i}")
    run_worker()
    page = web.get("/dead")
    token = _csrf(page.text)
    first = ops.list_jobs("default", "dead").jobs[0]
    web.post("/bulk", data={"_csrf": token, "op": "retry", "id": f"default/{first.id}"})
    assert ops.get_job("default", first.id).state == "queued"
    web.post("/bulk", data={"_csrf": token, "op": "delete", "all": "1", "state": "dead"})
    assert ops.queue("default").dead == 0
    web.post("/queues/default/pause", data={"_csrf": token})
    assert ops.queue("default").paused
    assert "paused" in web.get("/queues").text
    web.post("/queues/default/clear", data={"_csrf": token})
    assert ops.queue("default").size == 0


def test_credentials_basic_and_token(client):
    configure(web_password="s3cret", web_token="tok")
    web = TestClient(create_app(), client=("203.0.113.9", 1))
    assert web.get("/").status_code == 401
    assert web.get("/").headers["www-authenticate"].startswith("Basic")
    assert web.get("/", auth=("steep", "wrong")).status_code == 401
    assert web.get("/", auth=("steep", "s3cret")).status_code == 200
    assert web.get("/", auth=("anyone", "tok")).status_code == 200
    assert web.get("/metrics", headers={"Authorization": "Bearer tok"}).status_code == 200
    # secrets stay out of anything that prints the settings
    assert "s3cret" not in repr(get_settings()) and "tok'" not in repr(get_settings())


def test_credentials_from_steep_toml_and_environment(tmp_path):
    (tmp_path / "steep.toml").write_text('web_username = "ops"\nweb_password = "from-file"\n')
    settings = load_settings(tmp_path, environ={"STEEP_WEB_TOKEN": "from-env"})
    assert (settings.web_username, settings.web_password) == ("ops", "from-file")
    assert settings.web_token == "from-env"
    assert load_settings(tmp_path, environ={"STEEP_WEB_READ_ONLY": "yes"}).web_read_only
    with pytest.raises(ConfigError, match=r"STEEP_WEB_READ_ONLY.*true or false"):
        load_settings(tmp_path, environ={"STEEP_WEB_READ_ONLY": "maybe"})


def test_a_same_host_reverse_proxy_does_not_make_requests_local(web, client):
    # the proxy connects from loopback, but on behalf of someone else
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        refused = web.get("/", headers={header: "203.0.113.9"})
        assert refused.status_code == 403 and "proxy" in refused.text
    assert web.get("/").status_code == 200


def test_without_credentials_only_loopback_is_served(web, client):
    remote = TestClient(create_app(), client=("203.0.113.9", 1))
    assert remote.get("/").status_code == 403
    assert web.get("/").status_code == 200
    vouched = TestClient(create_app(allow_anonymous=True), client=("203.0.113.9", 1))
    assert vouched.get("/").status_code == 200
    with pytest.raises(CredentialsRequired):
        build_server("0.0.0.0", 8599)
    assert build_server("127.0.0.1", 8599) is not None


def test_read_only_hides_buttons_and_refuses_changes(client):
    handle = jobs.add.enqueue(1, 2)
    web = TestClient(create_app(read_only=True), client=LOCAL)
    page = web.get("/queues")
    assert "read-only" in page.text and "Pause" not in page.text
    detail = web.get(f"/jobs/default/{handle.id}").text
    assert "<textarea" not in detail
    web.cookies.set("steep_csrf", "x")
    refused = web.post("/queues/default/pause", data={"_csrf": "x"})
    assert refused.status_code == 403 and not ops.queue("default").paused


def test_works_behind_a_path_prefix(web, client):
    handle = jobs.add.enqueue(1, 2)
    host = Starlette(routes=[Mount("/ops/steep", app=create_app())])
    mounted = TestClient(host, client=LOCAL)
    page = mounted.get("/ops/steep/queues/default")
    assert page.status_code == 200
    assert f'href="/ops/steep/jobs/default/{handle.id}"' in page.text
    assert 'src="/ops/steep/static/htmx.min.js"' in page.text
    assert mounted.get("/ops/steep/static/app.css").status_code == 200
    token = _csrf(page.text)
    done = mounted.post(
        "/ops/steep/queues/default/pause",
        data={"_csrf": token, "next": "/queues"},
        follow_redirects=False,
    )
    assert done.headers["location"].startswith("/ops/steep/queues?")


def test_prometheus_metrics_and_json_api(web, run_worker):
    jobs.add.enqueue(1, 2)
    run_worker()
    jobs.add.enqueue(2, 2)
    text = web.get("/metrics").text
    assert 'steep_queue_jobs{queue="default",state="queued"} 1.0' in text
    assert 'steep_jobs_processed_total{queue="default"} 1.0' in text
    assert web.get("/api/status").json()["totals"]["queued"] == 1
    listing = web.get("/api/jobs/default/queued").json()
    assert listing["jobs"][0]["args"] == [2, 2] and listing["cursor"] is None
    assert web.get("/api/jobs/default/bogus").status_code == 400


def test_recently_succeeded_jobs_show_result_and_run_time(web, run_worker):
    handle = jobs.add.enqueue(20, 22)
    run_worker()
    listing = web.get("/queues/default?state=succeeded").text
    assert handle.id in listing and "tests.jobs.add" in listing and ">42<" in listing
    assert "Finished" in listing and "Took" in listing
    detail = web.get(f"/jobs/default/{handle.id}").text
    assert "finished" in detail and "took" in detail and "failed of" not in detail
