"""What every request passes: security headers, a session cookie, CSRF tokens on every
state-changing request, and a login rate limit."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from triage.review.accounts import Account

# No inline script or style anywhere: every script and stylesheet is a file served from here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),  # pages hold report texts: never cached
    (b"cross-origin-opener-policy", b"same-origin"),
]
SESSION_USER = "user"
SESSION_ROLE = "role"
SESSION_CSRF = "csrf"


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (and HSTS when served over TLS)."""

    def __init__(self, app: ASGIApp, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if self.tls:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def signed_in(request: Request) -> Account | None:
    name = request.session.get(SESSION_USER)
    role = request.session.get(SESSION_ROLE)
    if isinstance(name, str) and isinstance(role, str):
        return Account(name, role)
    return None


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); every form and script POST sends it."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.session.get(SESSION_CSRF)
    return (
        isinstance(expected, str)
        and isinstance(sent, str)
        and hmac.compare_digest(expected.encode(), sent.encode())
    )


class LoginThrottle:
    """At most ``attempts`` failed logins per ``window`` seconds per client address and per
    account name; beyond that, logins from it (or to it) are refused until the window passes."""

    def __init__(self, attempts: int = 5, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(key, now)) >= self.attempts for key in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        if len(self._failures) > 100_000:  # bounded, whatever a client sends
            self._failures = {k: v for k, v in self._failures.items() if v}
        return times


Endpoint = Callable[[Request], Awaitable[Response]]
