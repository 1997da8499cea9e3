"""The one table from domain errors to gRPC status codes, and the interceptor that applies it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from triage.core.errors import (
    DeadlineExceeded,
    InvalidReport,
    ModelLoadError,
    ModelUnavailable,
    Overloaded,
    TriageError,
)
from triage.rpc.wrapping import WrappingInterceptor, wrap_handler

log = logging.getLogger(__name__)

STATUS_OF: dict[type[TriageError], grpc.StatusCode] = {
    InvalidReport: grpc.StatusCode.INVALID_ARGUMENT,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelUnavailable: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelLoadError: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for ``error``.

    Domain errors carry messages written for the caller. Anything else is a server bug: the
    caller gets INTERNAL and an incident id, the traceback goes to the log under that id.
    """
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind], str(error)
    incident = uuid.uuid4().hex[:12]
    log.error("unexpected error (incident %s)", incident, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); see the server log"


class StatusInterceptor(WrappingInterceptor):
    """Turns exceptions escaping a servicer into the status code :func:`status_for` picks."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return wrap_handler(handler, unary=_unary, streaming=_streaming)


def _unary(behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
    try:
        return behaviour(request, context)
    except Exception as err:
        if _already_aborted(err, context):
            raise
        code, message = status_for(err)
        context.abort(code, message)


def _streaming(
    behaviour: Callable[..., Iterator[Any]], request: Any, context: grpc.ServicerContext
) -> Iterator[Any]:
    try:
        yield from behaviour(request, context)
    except Exception as err:
        if _already_aborted(err, context):
            raise
        code, message = status_for(err)
        context.abort(code, message)


def _already_aborted(err: Exception, context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after setting the code; let it through.
    return type(err) is Exception and context.code() is not None
