"""A job that logs through the application's own logger (imported by worker subprocesses)."""

import logging

from steep import job

log = logging.getLogger("shop.orders")


@job(result_ttl=60)
def confirm(order: int) -> int:
    log.info("order %s confirmed", order)
    log.warning("order %s is late", order)
    return order
