"""steep.mail against real SMTP servers on loopback (aiosmtpd, tests/smtp_servers.py):
what each connection received (envelope, headers, body), interception at the envelope,
a 421 retried, a 550 in the dead set, a server that is down, STARTTLS with a login, and a
job run twice that sends once."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from steep import JobFailed, mail
from steep.connection import get_keys
from steep.mail.jobs import send_mail
from steep.mail.message import build, encode
from steep.settings import ConfigError, configure, load_settings
from tests.conftest import wait_for

pytest_plugins = ["tests.smtp_servers"]  # the smtp fixture


@pytest.fixture
def fast_retries(monkeypatch):
    # the retry delay is the job's own option; production's 10 s would only slow the test
    monkeypatch.setattr(
        send_mail, "default_options", send_mail.default_options.replace(backoff=0.05)
    )


def test_text_html_attachments_cc_and_bcc_reach_the_envelope(smtp, run_worker, tmp_path: Path):
    recorder = smtp()
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 fake")
    job = mail.send(
        "Ann <ann@customer.test>",
        "Your order",
        "It ships today.",
        html="<p>It ships <b>today</b>.</p>",
        cc=["bob@customer.test"],
        bcc="audit@shop.test",
        attachments=[invoice, ("notes.txt", "thank you")],
    )
    run_worker()
    [got] = recorder.received
    assert got.mail_from == "shop@example.com"
    assert sorted(got.rcpt_tos) == ["ann@customer.test", "audit@shop.test", "bob@customer.test"]
    message = got.message
    assert message["Bcc"] is None and "audit@shop.test" not in message.as_string()
    assert message["To"] == "Ann <ann@customer.test>" and message["Subject"] == "Your order"
    assert message.get_body(("plain",)).get_content().strip() == "It ships today."
    assert "<b>today</b>" in message.get_body(("html",)).get_content()
    files = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert files == {"invoice.pdf": b"%PDF-1.4 fake", "notes.txt": "thank you\r\n"}
    outcome = job.result(timeout=5)
    assert outcome["message_id"] == message["Message-ID"] and outcome["intercepted"] is False


def test_staging_replaces_the_envelope_keeps_the_originals_and_lets_the_allowlist_through(
    smtp, run_worker
):
    recorder = smtp(env="staging", intercept_to=["team@example.com"], allow=["@example.com"])
    mail.send(
        ["customer@gmail.test", "qa@example.com"],
        "Password reset",
        "Click here.",
        cc=["friend@other.test"],
        bcc=["secret@elsewhere.test"],
    )
    run_worker()
    [got] = recorder.received
    # the envelope decides who receives it: the team and the allowed address, nobody else
    assert sorted(got.rcpt_tos) == ["qa@example.com", "team@example.com"]
    headers = got.message
    assert headers["Subject"] == "[staging] Password reset"
    assert headers["X-Intercepted-To"] == "customer@gmail.test, qa@example.com"
    assert headers["X-Intercepted-Cc"] == "friend@other.test"
    assert headers["X-Intercepted-Bcc"] == "secret@elsewhere.test"
    assert headers["Cc"] is None and headers["Bcc"] is None
    assert headers["To"] == "team@example.com, qa@example.com"


def test_only_allowed_recipients_means_nothing_goes_to_the_team(smtp, run_worker):
    recorder = smtp(env="staging", intercept_to=["team@example.com"], allow=["dev@example.com"])
    mail.send("dev@example.com", "Build", "green")
    run_worker()
    assert recorder.received[0].rcpt_tos == ["dev@example.com"]
    assert recorder.received[0].message["Subject"] == "[staging] Build"


def test_staging_with_nobody_to_intercept_to_refuses_to_send(smtp, client, run_worker):
    smtp(env="staging")
    with pytest.raises(ConfigError, match=r"\[staging.mail\].*intercept_to is empty"):
        mail.send("customer@gmail.test", "Hello", "hi")
    assert client.hlen(get_keys().queue("default").jobs) == 0  # nothing enqueued

    # a message enqueued elsewhere reaches a staging worker without intercept_to: it dies
    # with that reason instead of reaching the customer
    recorder = smtp()
    job = mail.send("customer@gmail.test", "Hello", "hi")
    configure(env="staging", mail={"host": "127.0.0.1", "port": 1})
    run_worker()
    assert recorder.received == []
    with pytest.raises(JobFailed, match="intercept_to is empty"):
        job.result(timeout=5)


@pytest.mark.parametrize("first", ["421 4.3.2 Service busy, try later", "DROP"])
def test_421_or_a_dropped_connection_then_250_is_retried_and_sent_once(
    smtp, run_worker, fast_retries, first
):
    recorder = smtp(first)
    job = mail.send("ann@customer.test", "Receipt", "thanks")
    run_worker(burst=False)
    outcome = job.result(timeout=15)
    assert outcome["recipients"] == ["ann@customer.test"]
    assert recorder.attempts == 2 and len(recorder.received) == 1


def test_550_goes_to_the_dead_set_with_the_servers_reply(smtp, client, run_worker):
    recorder = smtp("550 5.1.1 <nobody@customer.test>: mailbox unavailable")
    job = mail.send("nobody@customer.test", "Receipt", "thanks")
    run_worker()
    with pytest.raises(JobFailed, match=r"550 5\.1\.1 <nobody@customer\.test>: mailbox"):
        job.result(timeout=5)
    assert recorder.attempts == 1 and recorder.received == []
    assert client.zscore(get_keys().queue("default").dead, job.id) is not None


def test_a_server_that_is_down_is_retried_never_dropped(settings, client, run_worker):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        configure(mail={"host": "127.0.0.1", "port": closed.getsockname()[1], "sender": "s@x.test"})
        job = mail.send("ann@customer.test", "Receipt", "thanks")
        qk = get_keys().queue("default")
        run_worker(burst=False)
        error = wait_for(lambda: client.hget(qk.errors, job.id), message="the first failure")
        assert b"cannot be reached" in error and b"Connection refused" in error
        assert client.zscore(qk.scheduled, job.id) is not None  # waiting for its retry
        assert client.zscore(qk.dead, job.id) is None
    finally:
        closed.close()


def test_a_job_run_again_after_the_server_accepted_does_not_send_twice(smtp):
    recorder = smtp()
    message = build(
        sender="shop@example.com", to=["ann@customer.test"], cc=[], subject="Once", body="x"
    )
    raw = encode(message)
    first = send_mail(raw, "shop@example.com", ["ann@customer.test"], [], [])
    again = send_mail(raw, "shop@example.com", ["ann@customer.test"], [], [])
    assert len(recorder.received) == 1
    assert again["already_sent"] is True and again["message_id"] == first["message_id"]


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """A server certificate for 127.0.0.1 from a test CA, and that CA's file."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, str(ca_file)


def login_table(tls: tuple[ssl.SSLContext, str]) -> dict[str, Any]:
    return {
        "_tls": tls[0],
        "_login": ("shop", "s3cret"),
        "starttls": True,
        "ca_file": tls[1],
        "username_env": "SHOP_SMTP_USER",
        "password_env": "SHOP_SMTP_PASSWORD",
    }


def test_starttls_and_login_with_credentials_from_the_environment(
    smtp, run_worker, monkeypatch, tls
):
    monkeypatch.setenv("SHOP_SMTP_USER", "shop")
    monkeypatch.setenv("SHOP_SMTP_PASSWORD", "s3cret")
    recorder = smtp(**login_table(tls))
    job = mail.send("ann@customer.test", "Secure", "over TLS")
    run_worker()
    job.result(timeout=5)
    [got] = recorder.received
    assert got.tls and got.authenticated_as == "shop"


def test_a_wrong_password_is_permanent_and_never_shown(smtp, run_worker, monkeypatch, tls):
    monkeypatch.setenv("SHOP_SMTP_USER", "shop")
    monkeypatch.setenv("SHOP_SMTP_PASSWORD", "wrong-horse")
    recorder = smtp(**login_table(tls))
    job = mail.send("ann@customer.test", "Hi", "x")
    run_worker()
    with pytest.raises(JobFailed, match="535") as failed:
        job.result(timeout=5)
    assert "wrong-horse" not in failed.value.message + failed.value.traceback
    assert recorder.received == []


def test_bad_input_is_refused_at_the_call(smtp):
    smtp()
    with pytest.raises(ValueError, match="recipient 'ann' is not an address"):
        mail.send("ann", "Hi", "x")
    with pytest.raises(ValueError, match="no recipient"):
        mail.send([], "Hi", "x")
    configure(mail={"host": "127.0.0.1"})
    with pytest.raises(ConfigError, match="no sender"):
        mail.send("ann@customer.test", "Hi", "x")


def test_the_staging_table_refines_the_mail_table_and_every_key_is_checked(tmp_path: Path):
    (tmp_path / "steep.toml").write_text(
        '[mail]\nhost = "smtp.example.com"\nport = 587\nstarttls = true\n'
        '[staging.mail]\nintercept_to = ["team@example.com"]\nallow = ["@Example.com"]\n'
    )
    staging = load_settings(tmp_path, environ={"STEEP_ENV": "staging"})
    config = mail.MailConfig.current(staging)
    assert (config.host, config.port, config.starttls) == ("smtp.example.com", 587, True)
    assert config.intercept and config.intercept_to == ("team@example.com",)
    assert config.allow == ("@example.com",) and config.subject_prefix == "[staging] "
    production = mail.MailConfig.current(load_settings(tmp_path, {"STEEP_ENV": "production"}))
    assert not production.intercept and production.subject_prefix == ""

    (tmp_path / "steep.toml").write_text('[mail]\nhost = "x"\n[staging.mail]\nallow = ["bob"]\n')
    with pytest.raises(ConfigError, match=r"steep.toml:4: 'mail.allow' must be an array of add"):
        load_settings(tmp_path, environ={})
    (tmp_path / "steep.toml").write_text('[mail]\nhots = "x"\n')
    with pytest.raises(ConfigError, match=r"steep.toml:2: 'mail.hots' .*did you mean 'host'"):
        load_settings(tmp_path, environ={})


def test_any_steep_worker_runs_send_mail_without_a_module_of_the_app(
    smtp, worker_cli, tmp_path: Path
):
    recorder = smtp()
    job = mail.send("ann@customer.test", "From a plain worker", "x")
    recorder_port = mail.MailConfig.current().port
    with (tmp_path / "steep.toml").open("a") as config:  # the worker's STEEP_CONFIG
        config.write(f'[mail]\nhost = "127.0.0.1"\nport = {recorder_port}\n')
    # tests.jobs knows nothing of mail: the job is steep's own
    cli = worker_cli("worker", "tests.jobs", "--burst", "-p", "1")
    assert cli.wait(60) == 0, cli.text
    assert job.result(timeout=5)["recipients"] == ["ann@customer.test"]
    assert [r.rcpt_tos for r in recorder.received] == [["ann@customer.test"]]


def test_the_queue_and_retries_of_the_mail_table_go_with_the_job(smtp, client):
    smtp(queue="mail", retries=3)
    job = mail.send("ann@customer.test", "Hi", "x")
    assert job.queue == "mail"
    envelope = json.loads(client.hget(get_keys().queue("mail").jobs, job.id))
    assert envelope["name"] == "steep.mail.send_mail" and envelope["retries"] == 3
    assert "ann@customer.test" in envelope["args"][2]  # the recipients travel beside the message
