"""Talking to the SMTP server: TLS or STARTTLS, login, and what a failure means.

A failure is either *transient* (a 4xx reply, a refused or dropped connection, a timeout:
`MailTransient`, which the send_mail job retries with backoff) or *permanent* (a 5xx
reply: `MailRejected`, which sends the job to the dead set with the server's reply). A
server that takes the message for some recipients and refuses others has sent it: the
refusals are reported in the job's result, never retried (that would send it twice).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass

from steep.mail.config import MailConfig
from steep.mail.errors import MailRejected, MailTransient
from steep.mail.intercept import Delivery

__all__ = ["MailRejected", "MailTransient", "Sent", "deliver"]


@dataclass(frozen=True, slots=True)
class Sent:
    """What the server accepted: the recipients, and those it refused (address -> reply)."""

    accepted: tuple[str, ...]
    refused: dict[str, str]


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    return f"{code} {text}".strip()


def _open(config: MailConfig) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=config.ca_file or None)
    if config.tls:
        return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    if config.starttls:
        smtp.starttls(context=context)
    return smtp


def deliver(delivery: Delivery, config: MailConfig) -> Sent:
    """Send `delivery` to exactly its envelope recipients; raise MailTransient or
    MailRejected (naming the server and its reply) when it was not sent."""
    where = f"SMTP server {config.host}:{config.port}"
    if not delivery.recipients:
        raise MailRejected("the message has no recipients")
    credentials = config.credentials()
    try:
        with _open(config) as smtp:
            if credentials is not None:
                smtp.login(*credentials)
            refused = smtp.send_message(
                delivery.message, from_addr=delivery.sender, to_addrs=list(delivery.recipients)
            )
    except smtplib.SMTPRecipientsRefused as exc:
        replies = {rcpt: _reply(code, text) for rcpt, (code, text) in exc.recipients.items()}
        detail = "; ".join(f"{rcpt}: {reply}" for rcpt, reply in replies.items())
        if any(reply.startswith("4") for reply in replies.values()):
            raise MailTransient(f"{where} refused the recipients for now: {detail}") from None
        raise MailRejected(f"{where} refused every recipient: {detail}") from None
    except smtplib.SMTPResponseException as exc:
        reply = _reply(exc.smtp_code, exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            raise MailTransient(f"{where} answered {reply}; will retry") from None
        raise MailRejected(f"{where} refused the message: {reply}") from None
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPNotSupportedError) as exc:
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            raise MailRejected(f"{where}: {exc}") from None
        raise MailTransient(f"{where} closed the connection: {exc}; will retry") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise MailTransient(f"{where} cannot be reached: {exc}; will retry") from None
    replies = {rcpt: _reply(code, text) for rcpt, (code, text) in refused.items()}
    accepted = tuple(r for r in delivery.recipients if r not in replies)
    return Sent(accepted, replies)
