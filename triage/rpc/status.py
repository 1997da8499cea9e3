"""The interceptor that turns exceptions escaping a servicer into the status the table picks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from triage.rpc.status_codes import status_for
from triage.rpc.wrapping import WrappingInterceptor, wrap_handler


class StatusInterceptor(WrappingInterceptor):
    """Aborts a call whose servicer raised with the code and message :func:`status_for` picks."""

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
