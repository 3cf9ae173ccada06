import json
import uuid

from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shop.jobs import confirm_order
from shop.models import Order
from steep.contrib.django import enqueue_on_commit
from steep.contrib.logging import bind


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    item = json.loads(request.body or b"{}").get("item", "tea")
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    with bind(request_id=request_id), transaction.atomic():
        order = Order.objects.create(item=item)
        # pushed when the block commits; nothing is pushed if it rolls back
        enqueue_on_commit(confirm_order, order.id)
    return JsonResponse({"id": order.id, "status": order.status}, status=201)


def order_status(request: HttpRequest, order_id: int) -> JsonResponse:
    order = Order.objects.get(pk=order_id)
    return JsonResponse({"id": order.id, "item": order.item, "status": order.status})


@csrf_exempt
@require_POST
def send_receipt(request: HttpRequest, order_id: int) -> JsonResponse:
    order = Order.objects.get(pk=order_id)
    customer = json.loads(request.body or b"{}").get("email", "customer@example.com")
    receipt = EmailMultiAlternatives(
        subject=f"Receipt for order {order.id}",
        body=f"You ordered {order.item}.",
        to=[customer],
        bcc=["accounts@example.com"],
    )
    receipt.attach_alternative(f"<p>You ordered <b>{order.item}</b>.</p>", "text/html")
    receipt.attach(f"order-{order.id}.txt", f"order {order.id}: {order.item}\n", "text/plain")
    sent = receipt.send()  # enqueued as a send_mail job; a worker sends it
    return JsonResponse({"enqueued": sent}, status=202)
