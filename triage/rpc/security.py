"""Transport security: TLS / mutual-TLS credentials and bearer-token authentication."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from triage.core.errors import TriageError
from triage.rpc import call_record
from triage.rpc.wrapping import wrap_handler

log = logging.getLogger(__name__)
OPEN_METHODS = ("/grpc.health.v1.Health/",)  # probes must work without a token
_SERVICE = "/triage.v1.TriageService/"
ADMIN_METHODS = frozenset({f"{_SERVICE}ReloadModel"})
REVIEWER_METHODS = frozenset({f"{_SERVICE}SubmitFeedback", f"{_SERVICE}GetDecision"})

# Roles, each allowed what the ones before it are: a client classifies and reads model info, a
# reviewer also records feedback and reads decisions, an admin also reloads the model.
CLIENT, REVIEWER, ADMIN = "client", "reviewer", "admin"
_RANK = {CLIENT: 0, REVIEWER: 1, ADMIN: 2}

UNAUTHENTICATED = (
    grpc.StatusCode.UNAUTHENTICATED,
    "missing or invalid bearer token: send 'authorization: Bearer <token>'",
)


def _needs(role: str, method: str) -> tuple[grpc.StatusCode, str]:
    option = {ADMIN: "--admin-token-file", REVIEWER: "--reviewer-token-file"}[role]
    return (
        grpc.StatusCode.PERMISSION_DENIED,
        f"{method.rsplit('/', 1)[-1]} needs {'an' if role == ADMIN else 'a'} {role} token "
        f"({option}); this token's role is lower",
    )


def _open_only_on_loopback(method: str) -> tuple[grpc.StatusCode, str]:
    return (
        grpc.StatusCode.PERMISSION_DENIED,
        f"{method.rsplit('/', 1)[-1]} is refused: the server listens beyond loopback without "
        "tokens. Configure reviewer and admin tokens"
        + (", or reload by promoting a model or with SIGHUP" if method in ADMIN_METHODS else ""),
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


def required_role(method: str) -> str:
    if method in ADMIN_METHODS:
        return ADMIN
    if method in REVIEWER_METHODS:
        return REVIEWER
    return CLIENT


@dataclass(frozen=True)
class Credential:
    """A bearer token, its role, and the name the decision record and access log know it by
    (never the token itself)."""

    name: str
    token: bytes
    role: str

    @classmethod
    def parse(cls, entry: str, role: str) -> Credential:
        """``entry`` is ``TOKEN`` or ``NAME TOKEN``; an unnamed token is named by a short,
        non-secret fingerprint (``token-1a2b3c4d``)."""
        parts = entry.split()
        if not parts or len(parts) > 2:
            raise TriageError("a token entry is TOKEN or NAME TOKEN, separated by a space")
        token = parts[-1].encode()
        name = parts[0] if len(parts) == 2 else f"token-{hashlib.sha256(token).hexdigest()[:8]}"
        return cls(name=name, token=token, role=role)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` metadata matching a configured token, compared
    in constant time; health checks stay open. Methods need a role (:func:`required_role`): a
    lower one gets PERMISSION_DENIED. With no tokens at all only the reviewer and admin methods
    are guarded, open or refused by ``open_without_token``. The caller's token name goes on the
    call's record (for the decision record and the access log); tokens are never logged."""

    def __init__(
        self,
        tokens: Sequence[str] = (),
        admin_tokens: Sequence[str] = (),
        admin_without_token: bool = False,
        reviewer_tokens: Sequence[str] = (),
    ) -> None:
        if any(not t.strip() for t in (*tokens, *admin_tokens, *reviewer_tokens)):
            raise TriageError("a token must not be empty")
        self._credentials = [
            Credential.parse(entry, role)
            for role, entries in (
                (CLIENT, tokens),
                (REVIEWER, reviewer_tokens),
                (ADMIN, admin_tokens),
            )
            for entry in entries
        ]
        self._open_without_token = admin_without_token

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        method: str = handler_call_details.method
        needed = required_role(method)
        if self._credentials:
            if method.startswith(OPEN_METHODS):
                return continuation(handler_call_details)
            credential = self._match(handler_call_details.invocation_metadata)
            if credential is None:
                return _deny(continuation(handler_call_details), *UNAUTHENTICATED)
            if _RANK[credential.role] < _RANK[needed]:
                return _deny(continuation(handler_call_details), *_needs(needed, method))
            return _as_caller(continuation(handler_call_details), credential.name)
        if needed != CLIENT and not self._open_without_token:
            return _deny(continuation(handler_call_details), *_open_only_on_loopback(method))
        return continuation(handler_call_details)

    def _match(self, metadata: Sequence[Any] | None) -> Credential | None:
        presented = b""
        for item in metadata or ():
            if item.key == "authorization":
                value = item.value if isinstance(item.value, str) else item.value.decode()
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer":
                    presented = token.strip().encode()
        found: Credential | None = None
        for credential in self._credentials:  # no early exit: time does not say which matched
            if hmac.compare_digest(presented, credential.token) and (
                found is None or _RANK[credential.role] > _RANK[found.role]
            ):
                found = credential
        return found if presented else None


def _as_caller(handler: grpc.RpcMethodHandler | None, name: str) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None

    def named(behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
        call_record.record_caller(name)
        return behaviour(request, context)

    return wrap_handler(handler, unary=named, streaming=named)


def _deny(
    handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None

    def refuse(behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return wrap_handler(handler, unary=refuse, streaming=refuse)
