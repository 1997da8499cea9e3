"""Transport security: TLS / mutual-TLS credentials and bearer-token authentication."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from triage.core.errors import TriageError
from triage.rpc.wrapping import wrap_handler

log = logging.getLogger(__name__)
OPEN_METHODS = ("/grpc.health.v1.Health/",)  # probes must work without a token
ADMIN_METHODS = frozenset({"/triage.v1.TriageService/ReloadModel"})

UNAUTHENTICATED = (
    grpc.StatusCode.UNAUTHENTICATED,
    "missing or invalid bearer token: send 'authorization: Bearer <token>'",
)
NOT_ADMIN = (
    grpc.StatusCode.PERMISSION_DENIED,
    "ReloadModel needs an admin token (--admin-token-file or TRIAGE_ADMIN_TOKENS); "
    "this token is a client token",
)
NO_ADMIN_TOKENS = (
    grpc.StatusCode.PERMISSION_DENIED,
    "ReloadModel is refused: the server listens beyond loopback without tokens. Configure "
    "admin tokens, or reload by promoting a model or with SIGHUP",
)


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate and key (PEM); with ``client_ca``, clients must present a
    certificate signed by it (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        try:
            key, cert = self.key.read_bytes(), self.cert.read_bytes()
            ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as err:
            raise TriageError(f"cannot read TLS file {err.filename}: {err.strerror}") from None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` metadata matching a client or an admin token,
    compared in constant time; health checks stay open. Admin methods (ReloadModel) need an
    admin token: a client token gets PERMISSION_DENIED. With no tokens at all only the admin
    methods are guarded, open or refused by ``admin_without_token``. Tokens are never logged."""

    def __init__(
        self,
        tokens: Sequence[str] = (),
        admin_tokens: Sequence[str] = (),
        admin_without_token: bool = False,
    ) -> None:
        if any(not t.strip() for t in (*tokens, *admin_tokens)):
            raise TriageError("a token must not be empty")
        self._tokens = [(t.strip().encode(), False) for t in tokens]
        self._tokens += [(t.strip().encode(), True) for t in admin_tokens]
        self._admin_without_token = admin_without_token

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        method: str = handler_call_details.method
        admin = method in ADMIN_METHODS
        if self._tokens:
            if method.startswith(OPEN_METHODS):
                return continuation(handler_call_details)
            role = self._role(handler_call_details.invocation_metadata)
            if role is None:
                return _deny(continuation(handler_call_details), *UNAUTHENTICATED)
            if admin and role != "admin":
                return _deny(continuation(handler_call_details), *NOT_ADMIN)
        elif admin and not self._admin_without_token:
            return _deny(continuation(handler_call_details), *NO_ADMIN_TOKENS)
        return continuation(handler_call_details)

    def _role(self, metadata: Sequence[Any] | None) -> str | None:
        presented = b""
        for item in metadata or ():
            if item.key == "authorization":
                value = item.value if isinstance(item.value, str) else item.value.decode()
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer":
                    presented = token.strip().encode()
        client = admin = False
        for token, is_admin in self._tokens:  # no early exit: time does not say which matched
            matched = hmac.compare_digest(presented, token)
            admin |= matched and is_admin
            client |= matched
        if not presented or not client:
            return None
        return "admin" if admin else "client"


def _deny(
    handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None

    def refuse(behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return wrap_handler(handler, unary=refuse, streaming=refuse)
