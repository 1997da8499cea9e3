"""Rebuilding a method's handler around its behaviour, whatever its call shape, once per method."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

UnaryWrapper = Callable[[Callable[..., Any], Any, grpc.ServicerContext], Any]
StreamWrapper = Callable[[Callable[..., Iterator[Any]], Any, grpc.ServicerContext], Iterator[Any]]


def wrap_handler(
    handler: grpc.RpcMethodHandler, unary: UnaryWrapper, streaming: StreamWrapper
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped: by ``unary`` if it returns one response, by
    ``streaming`` if it yields many. The one place that knows gRPC's four handler shapes."""
    shapes: list[tuple[Any, Callable[..., grpc.RpcMethodHandler], UnaryWrapper | StreamWrapper]] = [
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, unary),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, unary),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, streaming),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, streaming),
    ]
    for behaviour, make, wrapper in shapes:
        if behaviour is not None:
            return make(
                _bind(wrapper, behaviour),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _bind(wrapper: Any, behaviour: Any) -> Callable[[Any, grpc.ServicerContext], Any]:
    return lambda request, context: wrapper(behaviour, request, context)


class WrappingInterceptor(grpc.ServerInterceptor):
    """Base of the interceptors that wrap handlers (status mapping, metrics, access log).

    gRPC asks every interceptor for the handler on every call, on its one polling thread, which
    makes that work serial. The handler a method resolves to is the same object from call to
    call, so its wrapped form is built once and kept (rebuilt if the inner handler changes).
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        kept = self._wrapped.get(method)
        if kept is not None and kept[0] is handler:
            return kept[1]
        wrapped = self.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)  # only methods that exist: a bounded set
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` wrapped for ``method`` (a full name, /package.Service/Method)."""
        raise NotImplementedError
