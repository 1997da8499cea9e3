"""Rebuild a gRPC method handler around a wrapper, for whichever of the four call shapes it has."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

UnaryWrapper = Callable[[Callable[..., Any], Any, grpc.ServicerContext], Any]
StreamWrapper = Callable[[Callable[..., Iterator[Any]], Any, grpc.ServicerContext], Iterator[Any]]


def wrap_handler(
    handler: grpc.RpcMethodHandler, unary: UnaryWrapper, streaming: StreamWrapper
) -> grpc.RpcMethodHandler:
    """``unary`` wraps behaviours returning one response, ``streaming`` those yielding many."""
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
