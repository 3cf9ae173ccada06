"""Who may use the dashboard, and proof that a change was asked for by it.

- Credentials: HTTP basic (username and password) and/or a bearer token. A
  browser sends the token as the basic password with any username.
  Without credentials, only loopback clients are served (unless the host
  application vouches for its users with `allow_anonymous=True`).
- Cross-site request forgery: every POST carries the token from the
  `steep_csrf` cookie (double submit, compared in constant time), and a
  cross-origin `Origin` header is refused outright.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CSRF_COOKIE = "steep_csrf"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __bool__(self) -> bool:
        return bool((self.username and self.password) or self.token)

    def accepts(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and self.token:
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if self.token and hmac.compare_digest(password.encode(), self.token.encode()):
            return True
        if self.username and self.password:
            same_user = hmac.compare_digest(user.encode(), self.username.encode())
            same_password = hmac.compare_digest(password.encode(), self.password.encode())
            return same_user and same_password
        return False


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


class Guard:
    """ASGI middleware: authentication first, then CSRF on state-changing requests."""

    def __init__(self, app: ASGIApp, credentials: Credentials, allow_anonymous: bool) -> None:
        self.app = app
        self.credentials = credentials
        self.allow_anonymous = allow_anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.credentials:
            if not self.credentials.accepts(headers.get("authorization")):
                await _unauthorized()(scope, receive, send)
                return
        elif not self.allow_anonymous:
            client = scope.get("client")
            # A reverse proxy on the same host connects from loopback on behalf of
            # anyone: a forwarded request is not a local one.
            proxied = any(h in headers for h in _FORWARDING_HEADERS)
            if proxied or not is_loopback(client[0] if client else None):
                await PlainTextResponse(
                    "steep dashboard: no credentials are configured, so only local "
                    "clients are served"
                    + (" (this request came through a proxy)" if proxied else "")
                    + ": set web_password or web_token (STEEP_WEB_PASSWORD, STEEP_WEB_TOKEN)",
                    status_code=403,
                )(scope, receive, send)
                return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and not _same_origin(headers):
            await PlainTextResponse("cross-origin request refused", 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _unauthorized() -> Response:
    return PlainTextResponse(
        "authentication required",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="steep", charset="UTF-8"'},
    )


def _same_origin(headers: Headers) -> bool:
    origin = headers.get("origin") or headers.get("referer")
    if not origin or origin == "null":
        return origin is None  # no header (non-browser clients): the CSRF token decides
    # behind a proxy that rewrites Host, the original one is in X-Forwarded-Host
    return urlsplit(origin).netloc in {headers.get("host"), headers.get("x-forwarded-host")}


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    return bool(cookie and submitted) and hmac.compare_digest(cookie.encode(), submitted.encode())  # type: ignore[union-attr]
