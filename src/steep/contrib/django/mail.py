"""A Django email backend that sends through steep's send_mail job (and its interceptor).

    EMAIL_BACKEND = "steep.contrib.django.mail.EmailBackend"

`django.core.mail.send_mail()`, `mail_admins()` and `EmailMessage(...).send()` then return
as soon as the message is enqueued; a worker sends it by SMTP with the `[mail]` settings
of its environment, intercepting it on staging (docs/mail.md). Django's own `EMAIL_HOST`
settings are not used: the worker's `[mail]` table is what reaches the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steep.contrib._optional import require

require("django", extra="django", feature="steep.contrib.django.mail")

from django.conf import settings  # noqa: E402
from django.core.mail.backends.base import BaseEmailBackend  # noqa: E402

from steep import mail  # noqa: E402
from steep.job import Job  # noqa: E402

__all__ = ["EmailBackend"]


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]
    """Enqueues each message as a send_mail job; `jobs` keeps the handles of the last call."""

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.jobs: list[Job] = []

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        self.jobs = []
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                self.jobs.append(
                    mail.enqueue_message(
                        message.message(),
                        to=list(message.to),
                        cc=list(message.cc),
                        bcc=list(message.bcc),
                        sender=message.from_email or settings.DEFAULT_FROM_EMAIL,
                    )
                )
            except Exception:
                if not self.fail_silently:
                    raise
        return len(self.jobs)
