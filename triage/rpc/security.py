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
    """Requires ``authorization: Bearer <token>`` metadata matching one of the tokens, compared
    in constant time; health checks stay open. Tokens are never logged."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens or any(not t.strip() for t in tokens):
            raise TriageError("token auth needs at least one non-empty token")
        self._tokens = [t.strip().encode() for t in tokens]

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        method: str = handler_call_details.method
        if method.startswith(OPEN_METHODS) or self._allowed(
            handler_call_details.invocation_metadata
        ):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        return _deny(handler) if handler is not None else None

    def _allowed(self, metadata: Sequence[Any] | None) -> bool:
        presented = b""
        for item in metadata or ():
            if item.key == "authorization":
                value = item.value if isinstance(item.value, str) else item.value.decode()
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer":
                    presented = token.strip().encode()
        matched = False
        for token in self._tokens:  # no early exit: time does not depend on which one matched
            matched |= hmac.compare_digest(presented, token)
        return matched and bool(presented)


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    return wrap_handler(handler, unary=_refuse, streaming=_refuse)


def _refuse(behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
    context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or invalid bearer token: send 'authorization: Bearer <token>'",
    )
