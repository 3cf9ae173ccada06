"""Interception: on staging, mail goes to the team, not to the customers it names.

What decides who receives a message is the SMTP envelope (the `RCPT TO` list), not its
headers: a Bcc is in no header at all. So the interceptor returns the envelope's
recipients together with the rewritten message, and the transport sends to exactly that
list. Recipients on the allowlist (an address, or `@domain`) still get the message; every
other one is replaced by `intercept_to`. The original To, Cc and Bcc are kept in
`X-Intercepted-To`, `-Cc` and `-Bcc`, and the subject is prefixed (`[staging] `).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from steep.mail.config import MailConfig


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message as it will leave: the envelope's sender and recipients, and the message."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    intercepted: bool = False


def bare(address: str) -> str:
    """`Ann <ann@example.com>` -> `ann@example.com` (for the envelope and the allowlist)."""
    parsed = getaddresses([address])
    return (parsed[0][1] if parsed and parsed[0][1] else address).strip()


def _unique(addresses: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for address in addresses:
        seen.setdefault(address.lower(), address)
    return tuple(seen.values())


def is_allowed(address: str, allow: Sequence[str]) -> bool:
    lowered = bare(address).lower()
    domain = "@" + lowered.rpartition("@")[2]
    return any(rule in (lowered, domain) for rule in allow)


def prepare(
    message: EmailMessage,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str],
    bcc: Sequence[str],
    config: MailConfig,
) -> Delivery:
    """The delivery of `message` under `config`: intercepted when the environment asks."""
    for header in ("Bcc", "X-Intercepted-To", "X-Intercepted-Cc", "X-Intercepted-Bcc"):
        del message[header]  # a Bcc header would show every blind recipient to all
    everyone = [*to, *cc, *bcc]
    if not config.intercept:
        return Delivery(bare(sender), _unique(bare(a) for a in everyone), message)
    if not config.intercept_to:
        raise ValueError("interception needs intercept_to")  # MailConfig.current says so
    kept_visible = [a for a in (*to, *cc) if is_allowed(a, config.allow)]
    kept_blind = [a for a in bcc if is_allowed(a, config.allow)]
    replaced = len(kept_visible) + len(kept_blind) < len(everyone)
    admins = list(config.intercept_to) if replaced else []
    for header, original in (("X-Intercepted-To", to), ("X-Intercepted-Cc", cc)):
        if original:
            message[header] = ", ".join(original)
    if bcc:
        message["X-Intercepted-Bcc"] = ", ".join(bcc)
    del message["To"]
    del message["Cc"]
    message["To"] = ", ".join(_unique([*admins, *kept_visible]))
    subject = str(message.get("Subject", ""))
    if config.subject_prefix and not subject.startswith(config.subject_prefix):
        del message["Subject"]
        message["Subject"] = config.subject_prefix + subject
    recipients = _unique(bare(a) for a in (*admins, *kept_visible, *kept_blind))
    return Delivery(bare(sender), recipients, message, intercepted=True)
