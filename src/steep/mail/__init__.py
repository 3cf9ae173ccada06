"""Mail through a job, safe on staging: `steep.mail.send(to, subject, body)`.

    from steep import mail

    mail.send("ann@example.com", "Your order", "It ships today.",
              html="<p>It ships today.</p>", attachments=[Path("invoice.pdf")])

The message is built here (a text part, an HTML alternative, attachments, a Message-ID)
and enqueued as the built-in `send_mail` job on the `[mail]` queue; the worker sends it by
SMTP, intercepting it in the environments that ask (`[staging.mail]`, docs/mail.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from steep.job import Job
from steep.mail.config import MailConfig
from steep.mail.errors import MailRejected, MailTransient
from steep.mail.jobs import JOB_NAME, send_mail
from steep.settings import ConfigError

if TYPE_CHECKING:
    from email.message import Message

    from steep.mail.message import Attachment

# The message building and the SMTP side (steep.mail.message, .intercept, .smtp) are
# imported when used: steep imports this package in every process to register send_mail.
__all__ = [
    "JOB_NAME",
    "MailConfig",
    "MailRejected",
    "MailTransient",
    "enqueue_message",
    "send",
    "send_mail",
]


def _sender(sender: str | None, config: MailConfig) -> str:
    chosen = sender or config.sender
    if not chosen:
        raise ConfigError(
            'steep.mail: no sender; pass sender=... or set sender = "shop@example.com" in [mail]'
        )
    return chosen


def send(
    to: str | Sequence[str],
    subject: str,
    body: str,
    *,
    html: str | None = None,
    cc: str | Sequence[str] = (),
    bcc: str | Sequence[str] = (),
    attachments: Sequence[Attachment] = (),
    sender: str | None = None,
    headers: dict[str, str] | None = None,
) -> Job:
    """Enqueue a message for sending; returns the send_mail job."""
    from steep.mail.message import addresses, build

    config = MailConfig.current()  # refuses now, not in the worker, when it cannot intercept
    chosen = _sender(sender, config)
    to_list, cc_list = addresses(to, "recipient"), addresses(cc, "cc")
    bcc_list = addresses(bcc, "bcc")
    if not (to_list or cc_list or bcc_list):
        raise ValueError("steep.mail.send: no recipient; give at least one address in to")
    message = build(
        sender=chosen,
        to=to_list,
        cc=cc_list,
        subject=subject,
        body=body,
        html=html,
        attachments=attachments,
        headers=headers,
    )
    return _enqueue(message, chosen, to_list, cc_list, bcc_list, config)


def enqueue_message(
    message: Message,
    *,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    sender: str | None = None,
) -> Job:
    """Enqueue a message built elsewhere (Django's EmailMessage.message(), say)."""
    config = MailConfig.current()
    chosen = _sender(sender or message.get("From"), config)
    return _enqueue(message, chosen, list(to), list(cc), list(bcc), config)


def _enqueue(
    message: Message,
    sender: str,
    to: list[str],
    cc: list[str],
    bcc: list[str],
    config: MailConfig,
) -> Job:
    from steep.mail.message import encode, ensure_message_id

    ensure_message_id(message, sender)
    bound = send_mail.options(queue=config.queue, retries=config.retries)
    return bound.enqueue(encode(message), sender, to, cc, bcc)
