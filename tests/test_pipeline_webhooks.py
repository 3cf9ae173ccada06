"""Webhooks from GitHub and Gitea over real HTTP on loopback: verified before parsed,
every delivery once, every refusal said."""

from __future__ import annotations

import json

import httpx2

from steep.pipeline import store
from steep.pipeline.webhooks import verify
from tests.conftest import wait_for
from tests.pipeline_fixtures import definition, github_pull_request, github_push, post_hook

SECRET = "It's a Secret to Everybody"


def test_githubs_documented_test_vector_verifies():
    # docs.github.com, "Validating webhook deliveries": this secret and payload give
    # exactly this signature
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify("github", SECRET.encode(), b"Hello, World!", header)
    assert not verify("github", SECRET.encode(), b"Hello, World?", header)
    assert not verify("github", b"another secret", b"Hello, World!", header)
    assert not verify("github", SECRET.encode(), b"Hello, World!", header.removeprefix("sha256="))
    assert not verify("github", SECRET.encode(), b"Hello, World!", None)


def _setup(ci, forge="github"):
    ci.configure(forge=forge, webhook_secret_env="SHOP_HOOK_SECRET")
    ci.env = {"SHOP_HOOK_SECRET": SECRET}
    import os

    os.environ["SHOP_HOOK_SECRET"] = SECRET
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "echo tested"}])})
    return ci.repo.push("main")


def test_a_signed_github_push_starts_one_run_and_a_redelivery_none(ci, ci_web, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    sha = _setup(ci)
    ci.worker()
    url = f"{ci_web}/pipeline/hooks/github/shop"
    body = json.dumps(github_push("main", sha, "Add the cart")).encode()
    answer = post_hook(url, body, secret=SECRET, delivery="d-1")
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run"]
    again = post_hook(url, body, secret=SECRET, delivery="d-1")
    assert again.status_code == 200 and "handled already" in again.json()["message"]
    other = post_hook(url, body, secret=SECRET, delivery="d-2")  # same push, new delivery
    assert other.status_code == 200 and other.json()["run"] == run_id
    run = ci.wait(run_id)
    assert run.state == "passed"
    assert (run.meta.trigger, run.meta.ref, run.meta.sha) == ("push", "main", sha)
    assert run.meta.message == "Add the cart" and run.meta.forge_repo == "acme/shop"
    assert len(store.list_runs("shop")) == 1
    recorded = [json.loads(x) for x in ci.client.lrange(store.keys().deliveries("shop"), 0, -1)]
    assert [d["delivery"] for d in recorded] == ["d-2", "d-1", "d-1"]


def test_unsigned_or_wrongly_signed_requests_get_401_and_run_nothing(ci, ci_web, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    sha = _setup(ci)
    url = f"{ci_web}/pipeline/hooks/github/shop"
    body = json.dumps(github_push("main", sha)).encode()
    assert post_hook(url, body).status_code == 401
    assert post_hook(url, body, signature="sha256=" + "0" * 64).status_code == 401
    import hashlib
    import hmac

    # a signature that is right for another body (a replay with a changed payload)
    other = hmac.new(SECRET.encode(), body + b" ", hashlib.sha256).hexdigest()
    answer = post_hook(url, body, signature=f"sha256={other}")
    assert answer.status_code == 401 and "signature" in answer.json()["message"]
    assert store.list_runs("shop") == []


def test_a_project_with_no_secret_accepts_no_webhook_and_says_so(ci, ci_web, monkeypatch):
    monkeypatch.delenv("SHOP_HOOK_SECRET", raising=False)
    ci.configure(forge="github", webhook_secret_env="SHOP_HOOK_SECRET")
    answer = post_hook(f"{ci_web}/pipeline/hooks/github/shop", b"{}", secret="anything")
    assert answer.status_code == 403
    assert "has no webhook secret" in answer.json()["message"]
    assert "SHOP_HOOK_SECRET" in answer.json()["message"]
    from steep.pipeline.webhooks import warn_unprotected

    assert warn_unprotected() == ["project 'shop' accepts no webhook: SHOP_HOOK_SECRET is not set"]


def test_bad_requests_get_one_clear_answer_and_the_server_keeps_serving(ci, ci_web, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    sha = _setup(ci)
    base = f"{ci_web}/pipeline/hooks"
    unknown = post_hook(f"{base}/github/nope", b"{}", secret=SECRET)
    assert unknown.status_code == 404 and "unknown project 'nope'" in unknown.json()["message"]
    wrong_forge = post_hook(f"{base}/gitea/shop", b"{}", forge="gitea", secret=SECRET)
    assert wrong_forge.status_code == 404 and "from github" in wrong_forge.json()["message"]
    broken = post_hook(f"{base}/github/shop", b"{not json", secret=SECRET)
    assert broken.status_code == 400 and "malformed push payload" in broken.json()["message"]
    partial = post_hook(f"{base}/github/shop", b'{"ref": "refs/heads/main"}', secret=SECRET)
    assert partial.status_code == 400 and "no 'after'" in partial.json()["message"]
    ping = post_hook(f"{base}/github/shop", b'{"zen": "hi"}', event="ping", secret=SECRET)
    assert ping.status_code == 200 and ping.json()["message"] == "pong"
    tag = dict(github_push("main", sha), ref="refs/tags/v1")
    ignored = post_hook(f"{base}/github/shop", json.dumps(tag).encode(), secret=SECRET)
    assert ignored.status_code == 202 and "tags are not built" in ignored.json()["message"]
    closed = github_pull_request(5, "feature", sha, "main", action="closed")
    answer = post_hook(
        f"{base}/github/shop", json.dumps(closed).encode(), event="pull_request", secret=SECRET
    )
    assert "'closed' does not build" in answer.json()["message"]
    assert store.list_runs("shop") == []
    # and everything else is still served
    assert httpx2.get(f"{ci_web}/pipeline", timeout=10).status_code == 200


def test_a_github_pull_request_builds_the_merge_and_reports_on_the_head(ci, ci_web, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    _setup(ci)
    head = ci.repo.commit({"feature.txt": "new"}, branch="feature")
    ci.repo.push("feature")
    ci.worker()
    body = json.dumps(github_pull_request(12, "feature", head, "main")).encode()
    answer = post_hook(
        f"{ci_web}/pipeline/hooks/github/shop", body, event="pull_request", secret=SECRET
    )
    assert answer.status_code == 202, answer.text
    run = ci.wait(answer.json()["run"])
    assert run.state == "passed"
    assert (run.meta.pr, run.meta.sha, run.meta.base_ref) == (12, head, "main")
    assert run.merge_sha and run.meta.author == "ada"


def test_a_signed_gitea_push_starts_a_run(ci, ci_web, monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    sha = _setup(ci, forge="gitea")
    ci.worker()
    body = json.dumps(github_push("main", sha)).encode()  # Gitea's push payload has this shape
    url = f"{ci_web}/pipeline/hooks/gitea/shop"
    assert post_hook(url, body, forge="gitea", signature="sha256=x").status_code == 401
    answer = post_hook(url, body, forge="gitea", secret=SECRET)
    assert answer.status_code == 202, answer.text
    assert ci.wait(answer.json()["run"]).state == "passed"


def test_polling_a_remote_builds_each_new_head_once(ci):
    ci.configure(poll=0.5)
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}])})
    ci.repo.push("main")
    ci.worker()
    # the first poll records what is there and builds the default branch only
    wait_for(lambda: ci.client.exists(store.keys().heads("shop")), message="the first poll")
    first = wait_for(lambda: store.list_runs("shop"), message="the first build")
    assert [(r.meta.ref, r.meta.trigger) for r in first] == [("main", "poll")]
    sha = ci.repo.commit({"a.txt": "1"})
    ci.repo.push("main")
    feature = ci.repo.commit({"b.txt": "1"}, branch="feature")
    ci.repo.push("feature")
    runs = wait_for(lambda: len(store.list_runs("shop")) == 3 and store.list_runs("shop")[:2])
    assert {(r.meta.ref, r.meta.sha, r.meta.trigger) for r in runs} == {
        ("main", sha, "poll"),
        ("feature", feature, "poll"),
    }
    for run in runs:
        assert ci.wait(run.id).state == "passed"
    assert len(store.list_runs("shop")) == 3  # polled again since, and built nothing more


def test_webhooks_need_no_dashboard_credentials_and_the_pages_still_do(ci, monkeypatch):
    import threading

    from steep.pipeline.server import with_webhooks
    from steep.pipeline.web import extension
    from steep.settings import configure
    from steep.web.serve import build_server
    from tests.conftest import free_port

    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    sha = _setup(ci)
    configure(web_password="dashboard-pw")
    port = free_port()
    server = build_server("127.0.0.1", port, extensions=[extension()], wrap=with_webhooks)
    server.config.install_signal_handlers = False
    threading.Thread(target=server.run, daemon=True).start()
    wait_for(lambda: server.started, message="the server to listen")
    base = f"http://127.0.0.1:{port}"
    try:
        assert httpx2.get(f"{base}/pipeline", timeout=5).status_code == 401
        assert httpx2.get(f"{base}/api/pipeline/runs", timeout=5).status_code == 401
        body = json.dumps(github_push("main", sha)).encode()
        answer = post_hook(f"{base}/pipeline/hooks/github/shop", body, secret=SECRET)
        assert answer.status_code == 202  # the signature is its credential
        run_id = answer.json()["run"]
        page = httpx2.get(f"{base}/pipeline/runs/{run_id}", auth=("steep", "dashboard-pw"))
        assert page.status_code == 200 and run_id in page.text
        # a cross-site form cannot cancel a run
        refused = httpx2.post(
            f"{base}/pipeline/runs/{run_id}/cancel",
            auth=("steep", "dashboard-pw"),
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403
        no_token = httpx2.post(
            f"{base}/pipeline/runs/{run_id}/cancel", auth=("steep", "dashboard-pw")
        )
        assert no_token.status_code == 403 and "CSRF" in no_token.text
        assert ci.run(run_id).state != "cancelled"
    finally:
        server.should_exit = True
