"""The shop's jobs; `manage.py steep_worker` finds this module by its name."""

import logging

from shop.models import Order
from steep import job

log = logging.getLogger(__name__)


@job(retries=3, result_ttl=300)
def confirm_order(order_id: int) -> str:
    # Order.DoesNotExist here would mean the job ran before the order was committed:
    # enqueue_on_commit is what prevents that.
    order = Order.objects.get(pk=order_id)
    order.status = "confirmed"
    order.save(update_fields=["status"])
    log.info("order %s confirmed", order_id)
    return order.item
