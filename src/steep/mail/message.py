"""Building a message (text, HTML alternative, attachments) and carrying it in a job.

A job's arguments are JSON, so the message travels as its RFC 5322 bytes in base64, with
its recipients beside it: the Bcc list never becomes a header, anywhere.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

# an attachment: a file, or (filename, content, optional MIME type)
Attachment = Path | tuple[str, bytes | str] | tuple[str, bytes | str, str]


def addresses(value: str | Sequence[str], what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or "@" not in item:
            raise ValueError(f"steep.mail: {what} {item!r} is not an address (name@example.com)")
    return items


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    content: bytes | str
    kind: str | None
    if isinstance(attachment, Path):
        name, content, kind = attachment.name, attachment.read_bytes(), None
    else:
        name, content = attachment[0], attachment[1]
        kind = attachment[2] if len(attachment) > 2 else None  # type: ignore[misc]
    kind = kind or mimetypes.guess_type(name)[0] or "application/octet-stream"
    maintype, _, subtype = kind.partition("/")
    if isinstance(content, str):
        if maintype == "text":
            message.add_attachment(content, subtype=subtype, filename=name)
            return
        content = content.encode()
    message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)


def build(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str],
    subject: str,
    body: str,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A message with a Message-ID (the send_mail job's key against sending twice)."""
    message = EmailMessage()
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        _attach(message, attachment)
    return message


def ensure_message_id(message: Message, sender: str) -> str:
    if not message.get("Message-ID"):
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    return str(message["Message-ID"])


def encode(message: Message) -> str:
    """The message as base64 of its bytes (CRLF line ends, as it goes on the wire)."""
    del message["Bcc"]
    buffer = io.BytesIO()
    # a generator rather than as_bytes(): Django's messages have their own as_bytes()
    BytesGenerator(buffer, policy=policy.SMTP).flatten(message)  # type: ignore[arg-type]
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(raw: str) -> EmailMessage:
    parsed: Any = message_from_bytes(base64.b64decode(raw), policy=policy.SMTP)
    return parsed  # policy.SMTP makes EmailMessage objects
