"""What a failed send means: retried (`MailTransient`) or final (`MailRejected`)."""

from __future__ import annotations


class MailTransient(Exception):
    """The server could not take the message now (4xx, connection trouble): retried."""


class MailRejected(Exception):
    """The server refused the message for good (5xx): the job goes to the dead set."""
