"""The review desk's web application: sign-in, sessions, the pages, static files."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from triage.review.accounts import Account, Accounts
from triage.review.guard import (
    SESSION_ROLE,
    SESSION_USER,
    LoginThrottle,
    SecurityHeaders,
    csrf_ok,
    csrf_token,
    signed_in,
)
from triage.store.crypto import TextCipher
from triage.store.database import Store

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SESSION_HOURS = 8  # a shift
MAX_FORM_BYTES = 64 * 1024  # a feedback note is at most 2,000 characters


@dataclass
class Desk:
    """Everything the pages need, shared by every request."""

    store: Store
    models_dir: Path
    accounts: Accounts
    cipher: TextCipher | None = None  # None: texts cannot be shown (no key given)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates"))
    )


def desk_of(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render ``template`` with the signed-in account and the session's CSRF token."""
    context.update(account=signed_in(request), csrf=csrf_token(request))
    return desk_of(request).templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


Handler = Callable[[Request], Awaitable[Response]]


def needs_account(role: str = "reviewer") -> Callable[[Handler], Handler]:
    """Only for a signed-in account of ``role`` (an admin may do what a reviewer may). A page
    without a session redirects to the sign-in page; an action gets 401. Every state-changing
    request must carry the session's CSRF token (a form field or the X-CSRF-Token header),
    or it is refused with 403 before anything happens."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: Request) -> Response:
            account = signed_in(request)
            if account is None:
                if request.method == "GET":
                    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
                return PlainTextResponse("sign in first", status_code=401)
            if role == "admin" and not account.is_admin:
                return PlainTextResponse("this needs an admin account", status_code=403)
            if request.method not in ("GET", "HEAD") and not await _csrf_checked(request):
                return PlainTextResponse("missing or wrong CSRF token", status_code=403)
            return await handler(request)

        return guarded

    return decorate


async def _csrf_checked(request: Request) -> bool:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form(max_fields=50, max_part_size=MAX_FORM_BYTES)
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    return csrf_ok(request, sent)


async def login_page(request: Request) -> Response:
    return page(request, "login.html", next=_safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    desk = desk_of(request)
    form = await request.form(max_fields=10, max_part_size=4096)
    if not csrf_ok(request, _text(form.get("csrf"))):
        return PlainTextResponse("missing or wrong CSRF token", status_code=403)
    name, password = _text(form.get("name"))[:64], _text(form.get("password"))[:1024]
    client = request.client.host if request.client else "unknown"
    keys = (f"address:{client}", f"name:{name}")
    target = _safe_next(_text(form.get("next")))
    if desk.throttle.blocked(*keys):
        log.warning("sign-in refused for %r from %s: too many failures", name, client)
        return page(
            request,
            "login.html",
            status_code=429,
            next=target,
            error="Too many failed sign-ins. Wait a few minutes and try again.",
        )
    account = desk.accounts.verify(name, password)
    if account is None:
        desk.throttle.failed(*keys)
        log.info("failed sign-in for %r from %s", name, client)
        return page(
            request,
            "login.html",
            status_code=401,
            next=target,
            name=name,
            error="Wrong name or password.",
        )
    desk.throttle.succeeded(*keys)
    request.session.clear()  # a fresh session (and CSRF token) for the signed-in account
    request.session[SESSION_USER] = account.name
    request.session[SESSION_ROLE] = account.role
    log.info("%s signed in (%s)", account.name, account.role)
    return RedirectResponse(target, status_code=303)


@needs_account()
async def logout(request: Request) -> Response:
    account = signed_in(request)
    request.session.clear()
    if account is not None:
        log.info("%s signed out", account.name)
    return RedirectResponse("/login", status_code=303)


async def home(request: Request) -> Response:
    return RedirectResponse("/queue", status_code=303)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never another host) after signing in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


def create_app(desk: Desk, tls: bool = False, session_key: str | None = None) -> Starlette:
    """The desk's ASGI application. Sessions live in a signed, HTTP-only, same-site cookie
    (Secure when served over TLS); without ``session_key`` a new one is made at every start,
    which signs everyone out."""
    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        *_pages(),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, tls=tls),
            Middleware(
                SessionMiddleware,
                secret_key=session_key or secrets.token_urlsafe(32),
                session_cookie="triage_desk",
                max_age=SESSION_HOURS * 3600,
                same_site="strict",
                https_only=tls,
            ),
        ],
    )
    app.state.desk = desk
    return app


def _pages() -> list[BaseRoute]:
    from triage.review import dashboard_pages, queue_pages

    return [*queue_pages.ROUTES, *dashboard_pages.ROUTES]


def account_of(request: Request) -> Account:
    """The signed-in account of a request that passed :func:`needs_account`."""
    account = signed_in(request)
    assert account is not None
    return account
