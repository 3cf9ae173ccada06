"""The `send_mail` job: intercept (where the environment asks), send, record what was sent.

It is registered when steep is imported, so every `steep worker` runs it without a module
of the application. Interception happens here, in the worker, the last step before the
wire: what the enqueuing process thought does not matter, the worker's environment
decides. The record `mail:sent:<Message-ID>` is written after the server accepted the
message and before the job is acknowledged, so a job run again (its worker died before the
acknowledgement, an operator retried it) does not send the message a second time.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from steep.connection import get_client, get_keys
from steep.mail.config import MailConfig
from steep.mail.errors import MailTransient
from steep.registry import job

log = logging.getLogger("steep.mail")

JOB_NAME = "steep.mail.send_mail"
SENT_RECORD_TTL = 7 * 24 * 3600


@job(
    name=JOB_NAME,
    retries=10,
    retry_on=(MailTransient,),
    backoff=10.0,
    max_backoff=1800.0,
    result_ttl=86400,
)
def send_mail(
    raw: str, sender: str, to: list[str], cc: list[str], bcc: list[str]
) -> dict[str, Any]:
    """Send one message (base64 of its bytes) to `to`, `cc` and `bcc` by SMTP."""
    # imported here: every steep process registers this job, few of them send mail
    from steep.mail.intercept import prepare
    from steep.mail.message import decode
    from steep.mail.smtp import deliver

    config = MailConfig.current()
    message = decode(raw)
    message_id = str(message.get("Message-ID", ""))
    record = get_keys().mail_sent(message_id) if message_id else None
    redis = get_client()
    if record is not None and (earlier := redis.get(record)) is not None:
        log.info("mail %s was accepted by the server before; not sending it again", message_id)
        return {**json.loads(earlier), "already_sent": True}
    delivery = prepare(message, sender, to, cc, bcc, config)
    sent = deliver(delivery, config)
    outcome = {
        "message_id": message_id,
        "recipients": list(sent.accepted),
        "refused": sent.refused,
        "intercepted": delivery.intercepted,
        "sent_at": round(time.time(), 3),
    }
    if record is not None:
        redis.set(record, json.dumps(outcome), ex=SENT_RECORD_TTL)
    if sent.refused:
        log.warning("mail %s: the server refused %s", message_id, sent.refused)
    return outcome
