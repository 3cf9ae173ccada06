"""Real SMTP servers on loopback for the mail tests (aiosmtpd, in a thread of the test).

Each server listens on a socket bound to port 0 before it starts (no port can be taken by
a neighbour meanwhile) and records what every delivery carried: the envelope (MAIL FROM,
RCPT TO), the headers and the body. `answers` scripts its replies to DATA: "421 ..." then
"250 ..." for a server that is busy once, "550 ..." for one that refuses, "DROP" for a
connection that dies after the message was sent.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from steep.settings import configure


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None = None
    tls: bool = False


@dataclass
class Recorder:
    """The handler: answers DATA as scripted (then 250), keeps what it accepted."""

    answers: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.answers:
            answer = self.answers.pop(0)
            if answer == "DROP":  # the connection dies mid-conversation
                assert server.transport is not None
                server.transport.abort()
                return "421 closing"
            if not answer.startswith("250"):
                return answer
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        parsed: Any = message_from_bytes(content, policy=policy.default)
        login = session.auth_data
        self.received.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=parsed,
                authenticated_as=login.decode() if isinstance(login, bytes) else login,
                tls=session.ssl is not None,
            )
        )
        return "250 OK: queued"


class SMTPServer:
    """An aiosmtpd server in a thread with its own event loop."""

    def __init__(
        self,
        recorder: Recorder,
        tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.recorder = recorder
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self._tls = tls_context
        self._credentials = credentials
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        user, password = data.login.decode(), data.password.decode()
        ok = self._credentials is not None and (user, password) == self._credentials
        return AuthResult(success=ok, auth_data=user if ok else None, handled=False)

    def _protocol(self) -> SMTP:
        options: dict[str, Any] = {"hostname": "localhost", "loop": self.loop}
        if self._tls is not None:
            options.update(tls_context=self._tls, require_starttls=True)
        if self._credentials is not None:
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self._tls is not None,
            )
        return SMTP(self.recorder, **options)

    def start(self) -> SMTPServer:
        self._thread.start()
        factory: Callable[[], SMTP] = self._protocol
        started = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(factory, sock=self.sock), self.loop
        )
        self._server = started.result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def smtp(client) -> Iterator[Callable[..., Recorder]]:
    """Start an SMTP server (optionally scripted) and point [mail] at it."""
    servers: list[SMTPServer] = []

    def start(*answers: str, env: str = "development", **mail_table: Any) -> Recorder:
        recorder = Recorder(answers=list(answers))
        server = SMTPServer(recorder, mail_table.pop("_tls", None), mail_table.pop("_login", None))
        servers.append(server.start())
        table = {"host": "127.0.0.1", "port": server.port, "sender": "shop@example.com"}
        configure(env=env, mail={**table, **mail_table})
        return recorder

    yield start
    for server in servers:
        server.stop()
