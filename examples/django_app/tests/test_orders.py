"""The shop's own tests, with steep's pytest plugin (installed with steep):

    cd examples/django_app && pytest

`steep_fake` checks what a view enqueues on commit, `steep_inline` runs the job when the
view commits, and `steep` runs jobs on a private Valkey server the plugin starts.
"""

from __future__ import annotations

from django.test import Client
from shop.jobs import confirm_order
from shop.models import Order


def place(item: str) -> int:
    response = Client().post("/orders/", data={"item": item}, content_type="application/json")
    assert response.status_code == 201
    return response.json()["id"]


def test_an_order_enqueues_its_confirmation_on_commit(steep_fake):
    order_id = place("crumpets")
    steep_fake.assert_enqueued(confirm_order, order_id, count=1)
    assert Order.objects.get(pk=order_id).status != "confirmed"  # nothing ran


def test_the_order_is_confirmed_when_the_view_commits(steep_inline):
    order_id = place("tea")
    assert Client().get(f"/orders/{order_id}/").json()["status"] == "confirmed"


def test_a_worker_confirms_the_order(steep):
    order_id = place("scones")
    assert steep.drain() == 1  # a real worker, in this process, on the private server
    assert Order.objects.get(pk=order_id).status == "confirmed"
