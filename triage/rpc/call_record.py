"""The domain results of the call being served, noted by the servicer for metrics and access log."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

import grpc

from triage.core.scoring import Outcome
from triage.rpc.wrapping import WrappingInterceptor, wrap_handler


class CallRecord:
    """What a call has answered, in domain terms, so that metrics and the access log count
    predictions and refusals without reading response messages back."""

    __slots__ = ("caller", "model_version", "outcomes", "received_at", "report_id", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()  # for the latency the decision record keeps
        self.received_at = time.time()  # wall clock, for the decision record
        # Who called: a token's name (set by the token check), else a client certificate's
        # subject, else "" (an anonymous caller on an open server).
        self.caller = ""
        # The reports the latest response answered: all of a unary call's, one per response of
        # a stream. None while no response has answered reports (a refused call, a model call).
        self.outcomes: Sequence[Outcome] | None = None
        self.model_version: str | None = None  # the model a GetModelInfo or reload answered for
        # The (validated) id of the one report a unary call asked about, for a refused call's
        # log line; never read from a request the server did not accept and decode.
        self.report_id = ""


# The gRPC server runs a call's handler, and every step of a streaming handler's response
# iterator, on one thread and in one contextvars.Context, so a record set when the call starts
# is the one every layer of that call sees, and no other call's.
_current: ContextVar[CallRecord] = ContextVar("triage_call_record")


def current() -> CallRecord:
    """The record of the call being served (opened by :class:`CallRecordInterceptor`)."""
    return _current.get()


def current_caller() -> str:
    record = _current.get(None)
    return record.caller if record is not None else ""


def current_times() -> tuple[float, float]:
    """When the call being served started: (monotonic, wall clock) seconds."""
    record = _current.get(None)
    if record is None:
        return time.monotonic(), time.time()
    return record.started, record.received_at


def record_outcomes(outcomes: Sequence[Outcome]) -> None:
    """Note the reports that the response about to be sent answers."""
    record = _current.get(None)
    if record is not None:  # None: served without the interceptors, nobody reads it
        record.outcomes = outcomes


def record_report_id(report_id: str) -> None:
    """Note the id of the report the call asks about, once it is known to be valid."""
    record = _current.get(None)
    if record is not None:
        record.report_id = report_id


def record_caller(name: str) -> None:
    """Note the authenticated caller's name (never a token)."""
    record = _current.get(None)
    if record is not None:
        record.caller = name


def record_model_version(version: str) -> None:
    """Note the model version that the response about to be sent describes."""
    record = _current.get(None)
    if record is not None:
        record.model_version = version


class CallRecordInterceptor(WrappingInterceptor):
    """Opens a fresh record for every call. It must be the outermost interceptor, so that each
    one inside it reads the record of its own call."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return wrap_handler(handler, unary=_open, streaming=_open)


def _open(behaviour: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
    # Set, never reset: every call opens its own before any layer of it reads one, and a reset
    # could run in another context (garbage collection may close a stream's iterator anywhere).
    _current.set(CallRecord())
    return behaviour(request, context)
