"""The quick-start jobs (docs/jobs.md walks through them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from steep import current_job, job


@dataclass
class Invoice:
    number: str
    amount_cents: int
    due: datetime


@job(queue="default", retries=5, timeout=30, result_ttl=300)
def send_report(user_id: int) -> str:
    return f"report for user {user_id}"


@job(queue="mail", result_ttl=300)
async def send_mail(to: str, subject: str) -> str:
    await asyncio.sleep(0.05)  # an async SMTP client would await here
    return f"mail to {to}: {subject}"


@job(queue="default", result_ttl=300)
def bill(invoice: Invoice) -> str:
    # `invoice` arrives as an Invoice again (with a real datetime), rebuilt from its type hint
    return f"{invoice.number}: {invoice.amount_cents / 100:.2f} due {invoice.due:%Y-%m-%d}"


@job(queue="default", retries=3, backoff=0.2, retry_on=(ConnectionError,), result_ttl=300)
def call_webhook(url: str) -> str:
    attempt = ctx.attempt if (ctx := current_job()) else 1
    if attempt == 1:  # the first delivery always times out in this example
        raise ConnectionError(f"{url} timed out")
    return f"delivered to {url} on attempt {attempt}"
