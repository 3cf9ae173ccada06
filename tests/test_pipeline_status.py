"""Commit statuses and notifications. The forge's status API cannot run here: a small
HTTP server in the test (tests/pipeline_fixtures.Recorder) records what steep sends and
answers as GitHub or Gitea would, including a burst of 502s and a 401. The SMTP server
is real (aiosmtpd, in this process)."""

from __future__ import annotations

import pytest

from steep.pipeline import start_run
from tests.conftest import wait_for
from tests.pipeline_fixtures import definition

TOKEN = "ghp_test-token-123"


def _project(ci, forge_api, forge="github", **more):
    ci.configure(
        forge=forge, forge_api=forge_api, forge_repo="acme/shop", token_env="SHOP_TOKEN", **more
    )
    ci.env = {"SHOP_TOKEN": TOKEN}


def _states(forge):
    return [r["json"]["state"] for r in forge.requests if r["answered"] < 300]


def test_a_run_reports_pending_then_success_on_its_commit(ci, recorder):
    forge = recorder()
    _project(ci, forge.url)
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}])})
    sha = ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    assert ci.wait(run_id).state == "passed"
    wait_for(lambda: _states(forge)[-1:] == ["success"], message="the success status")
    assert _states(forge)[0] == "pending"
    last = forge.requests[-1]
    assert last["path"] == f"/repos/acme/shop/statuses/{sha}"
    assert last["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert last["json"]["context"] == "steep"
    assert last["json"]["target_url"] == f"http://127.0.0.1:8500/pipeline/runs/{run_id}"


def test_a_forge_outage_delays_the_status_but_never_loses_it(ci, recorder):
    forge = recorder(answers=[502, 502, 502, 502])
    _project(ci, forge.url)
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "exit 1"}])})
    ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    assert ci.wait(run_id).state == "failed"
    wait_for(lambda: _states(forge)[-1:] == ["failure"], timeout=60, message="the failure status")
    assert [r["answered"] for r in forge.requests][:4] == [502] * 4
    assert ci.run(run_id).status_error is None


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_forge_that_refuses_the_token_is_said_on_the_run_not_retried(ci, recorder, forge_kind):
    forge = recorder(then=401)
    _project(ci, forge.url, forge=forge_kind)
    ci.repo.commit({"steep.toml": definition([{"name": "t", "run": "true"}])})
    ci.repo.push("main")
    ci.worker()
    run_id = start_run("shop", "main", trigger="manual")[0]
    assert ci.wait(run_id).state == "passed"
    error = wait_for(lambda: ci.run(run_id).status_error, message="the status error")
    assert f"{forge_kind} answered 401" in error and "check the token in SHOP_TOKEN" in error
    assert TOKEN not in error
    path = forge.requests[0]["path"]
    if forge_kind == "gitea":
        assert path.startswith("/api/v1/repos/acme/shop/statuses/")
        assert forge.requests[0]["headers"]["Authorization"] == f"token {TOKEN}"
    else:
        assert path.startswith("/repos/acme/shop/statuses/")


def test_a_failure_and_the_first_green_build_after_it_are_notified(ci, recorder, tmp_path):
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    from tests.conftest import free_port

    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        hook = recorder(then=200)
        ci.configure(notify_webhook=f"{hook.url}/ci", notify_mail=["team@example.com"])
        text = ci.config_path.read_text()
        text += f'[pipeline.notify]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        ci.config_path.write_text(text)
        flag = tmp_path / "green"
        ci.repo.commit({"steep.toml": definition([{"name": "t", "run": f"test -f {flag}"}])})
        ci.repo.push("main")
        ci.worker()
        broken = ci.wait(start_run("shop", "main", trigger="manual")[0])
        assert broken.state == "failed"
        wait_for(lambda: len(hook.requests) == 1 and len(inbox.messages) == 1, message="1 notice")
        flag.write_text("")
        fixed = ci.wait(start_run("shop", "main", trigger="manual")[0])
        assert fixed.state == "passed"
        wait_for(lambda: len(hook.requests) == 2 and len(inbox.messages) == 2, message="2 notices")
        still = ci.wait(start_run("shop", "main", trigger="manual")[0])  # green after green
        assert still.state == "passed"
        events = [r["json"]["event"] for r in hook.requests]
        assert events == ["failed", "fixed"]
        assert hook.requests[0]["json"]["run"] == broken.id
        recipients, content = inbox.messages[0]
        assert recipients == ["team@example.com"]
        assert "is broken" in content and broken.id in content
        assert "is green again" in inbox.messages[1][1]
    finally:
        smtp.stop()
