"""The Django example (examples/django_app) for real: sqlite database, a real worker.

The feature under test is transactions (enqueue_on_commit), so sqlite, in a file the
worker subprocess can open too, stands in for the project's database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steep.connection import get_keys
from steep.settings import configure
from tests.conftest import FAST_CONFIG, ROOT, ServerHandle

APP = ROOT / "examples" / "django_app"
pytest_plugins = ["tests.smtp_servers"]  # the smtp fixture


@pytest.fixture(scope="module")
def project(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Django set up once for this module, on a fresh sqlite file."""
    import django

    db = tmp_path_factory.mktemp("django") / "shop.sqlite3"
    os.environ["SHOP_DB"] = str(db)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    sys.path.insert(0, str(APP))
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    yield db
    sys.path.remove(str(APP))


@pytest.fixture
def queued(project: Path, client) -> Iterator[Callable[[], int]]:
    from shop.models import Order

    Order.objects.all().delete()
    yield lambda: client.hlen(get_keys().queue("default").jobs)


def test_rollback_enqueues_nothing_and_commit_enqueues_after(queued, run_worker):
    from django.db import transaction
    from shop.jobs import confirm_order
    from shop.models import Order

    from steep.contrib.django import enqueue_on_commit

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        order = Order.objects.create(item="rolled back")
        enqueue_on_commit(confirm_order, order.id)
        raise Abandon
    assert queued() == 0 and not Order.objects.exists()

    with transaction.atomic():
        order = Order.objects.create(item="tea")
        enqueue_on_commit(confirm_order, order.id)
        assert queued() == 0  # nothing a worker could pick up before the row is committed
    assert queued() == 1

    run_worker()
    assert queued() == 0
    order.refresh_from_db()
    assert order.status == "confirmed"  # the job found the committed row


def test_arguments_that_cannot_be_sent_fail_at_the_call(queued):
    from django.db import transaction
    from shop.jobs import confirm_order

    from steep.contrib.django import enqueue_on_commit

    with pytest.raises(TypeError), transaction.atomic():
        enqueue_on_commit(confirm_order, object())
    assert queued() == 0


def test_view_enqueues_and_manage_py_steep_worker_runs_the_job(
    queued, server: ServerHandle, tmp_path: Path
):
    from django.test import Client
    from shop.models import Order

    response = Client().post("/orders/", data='{"item": "scones"}', content_type="application/json")
    assert response.status_code == 201
    order_id = response.json()["id"]
    assert queued() == 1

    config = tmp_path / "steep.toml"
    config.write_text(FAST_CONFIG)
    env = {
        **os.environ,
        "STEEP_REDIS_URL": server.url,
        "STEEP_CONFIG": str(config),
        "PYTHONPATH": str(ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, str(APP / "manage.py"), "steep_worker", "--burst", "-p", "1"],
        cwd=ROOT,  # not the project's directory: the command puts the project on the path
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shop.jobs.confirm_order on default succeeded" in done.stderr
    # settings.STEEP reached the supervisor (and through it every worker process)
    assert "on queues default,mail" in done.stderr
    assert Order.objects.get(pk=order_id).status == "confirmed"
    assert queued() == 0


def test_manage_py_steep_runs_any_steep_command(queued, capsys):
    from django.core.management import call_command
    from shop.jobs import confirm_order

    confirm_order.enqueue(1)
    call_command("steep", "status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert [(q["name"], q["size"]) for q in status["queues"]] == [("default", 1)]


def test_settings_steep_is_applied_and_checked(project, settings):
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from steep.contrib.django.apps import apply_settings, job_modules

    applied = apply_settings()
    assert applied.middleware == ("steep.contrib.logging:LogContext",)
    assert applied.redis_url == settings.redis_url  # the rest still comes from steep's sources
    assert job_modules() == ["shop.jobs"]
    with (
        override_settings(STEEP={"queus": ["default"]}),
        pytest.raises(ImproperlyConfigured, match=r"settings.STEEP: .*'queus' \(did you mean"),
    ):
        apply_settings()


def test_dashboard_is_mounted_in_the_asgi_app(project, client, monkeypatch):
    import importlib

    import mysite.asgi
    from starlette.testclient import TestClient

    configure(web_password="s3cret")  # as STEEP_WEB_PASSWORD would at start-up

    web = TestClient(importlib.reload(mysite.asgi).application, client=("203.0.113.9", 1))
    assert web.get("/steep/").status_code == 401
    page = web.get("/steep/", auth=("steep", "s3cret"))
    assert page.status_code == 200 and "steep" in page.text
    assert web.post("/orders/", content="{}").status_code == 201  # Django still answers


def test_django_mail_goes_through_the_job_and_is_intercepted_on_staging(queued, smtp, run_worker):
    from django.core import mail as django_mail
    from django.test import Client
    from shop.models import Order

    recorder = smtp(env="staging", intercept_to=["team@example.com"], allow=["@example.com"])
    order = Order.objects.create(item="scones")
    response = Client().post(
        f"/orders/{order.id}/receipt/",
        data='{"email": "ann@customer.test"}',
        content_type="application/json",
    )
    assert response.status_code == 202 and response.json() == {"enqueued": 1}
    assert queued() == 1  # the view returned before any SMTP conversation
    django_mail.send_mail("Low stock", "scones", None, ["buyer@supplier.test"])
    run_worker()
    alert, receipt = sorted(recorder.received, key=lambda r: r.message["Subject"])
    # the customer is replaced by the team; the allowed Bcc still gets its copy
    assert sorted(receipt.rcpt_tos) == ["accounts@example.com", "team@example.com"]
    assert receipt.message["Subject"] == f"[staging] Receipt for order {order.id}"
    assert receipt.message["X-Intercepted-To"] == "ann@customer.test"
    assert receipt.message["X-Intercepted-Bcc"] == "accounts@example.com"
    assert "<b>scones</b>" in receipt.message.get_body(("html",)).get_content()
    [attachment] = receipt.message.iter_attachments()
    assert attachment.get_filename() == f"order-{order.id}.txt"
    assert alert.rcpt_tos == ["team@example.com"] and alert.mail_from == "shop@example.com"


def test_with_steep_fake_the_view_is_tested_without_a_worker(queued, steep_fake):
    # steep.testing's fake mode (a fixture of steep's pytest plugin): what the view
    # enqueued on commit is recorded, not run, and nothing reaches the server
    from django.test import Client
    from shop.jobs import confirm_order
    from shop.models import Order

    response = Client().post(
        "/orders/", data='{"item": "crumpets"}', content_type="application/json"
    )
    order_id = response.json()["id"]
    steep_fake.assert_enqueued(confirm_order, order_id, count=1)
    assert queued() == 0
    assert Order.objects.get(pk=order_id).status != "confirmed"
    assert steep_fake.drain() == ["crumpets"]  # run in this process, as a worker would
    assert Order.objects.get(pk=order_id).status == "confirmed"


def test_with_steep_inline_the_job_runs_when_the_view_commits(queued, steep_inline):
    from django.test import Client

    web = Client()
    order_id = web.post("/orders/", data='{"item": "tea"}', content_type="application/json").json()[
        "id"
    ]
    assert web.get(f"/orders/{order_id}/").json()["status"] == "confirmed"
    assert queued() == 0
