"""Call intake: each call takes its capacity slot, then reads its request messages, each
admitted to the byte budget before it is parsed, on the call's own thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from triage.core.errors import InvalidReport, TriageError
from triage.rpc.admission import CallSlots, CapacityRefused, RequestBudget
from triage.rpc.wrapping import WrappingInterceptor

# Health checks are never refused for capacity: a probe that failed because the service is
# busy would get a busy replica restarted. Their messages are a few bytes.
EXEMPT_METHODS = frozenset({"/grpc.health.v1.Health/Check"})
MAX_EXEMPT_MESSAGE_BYTES = 4 * 1024

Parse = Callable[[bytes], Any]


class Unread:
    """A request message of a stream refused before it was parsed (over the byte budget, or
    not a valid message), handed to the servicer so that it answers this one with an error and
    the stream goes on."""

    __slots__ = ("error",)

    def __init__(self, error: TriageError) -> None:
        self.error = error


class IntakeInterceptor(WrappingInterceptor):
    """Admits calls to their slots (:class:`CallSlots`) and request bytes to the budget
    (:class:`RequestBudget`); it must be the innermost interceptor.

    gRPC's synchronous server receives and parses a unary call's request before any handler
    code runs, on a thread of its pool: a caller that never sends the body would hold a thread
    no limit counted, and every message would be parsed (on gRPC's single polling thread)
    before any budget could refuse it. So every method is served here as request-streaming
    (the wire format is the same): the slot is taken first, then the raw message is read,
    admitted to the budget and parsed on the call's thread. ``answers_per_message`` names the
    request-streaming methods whose servicer answers an :class:`Unread` message itself; any
    other ends with the message's status.
    """

    def __init__(
        self,
        slots: CallSlots,
        budget: RequestBudget,
        answers_per_message: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.slots = slots
        self.budget = budget
        self.answers_per_message = answers_per_message

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        parse: Parse = handler.request_deserializer or _unparsed
        read = _MessageReader(self.budget, parse, exempt=method in EXEMPT_METHODS)
        if method in EXEMPT_METHODS:
            enter: Callable[[grpc.ServicerContext], Callable[[], None]] = _no_slot
        elif handler.request_streaming or handler.response_streaming:
            enter = self._stream_slot
        else:
            enter = self._unary_slot
        per_message = method in self.answers_per_message
        behaviour = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(enter, read, behaviour, handler.request_streaming, per_message),
                request_deserializer=None,  # raw bytes: parsed here, within the budget
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_unary_rpc_method_handler(
            _unary(enter, read, behaviour, handler.request_streaming, per_message),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )

    def _unary_slot(self, context: grpc.ServicerContext) -> Callable[[], None]:
        self.slots.enter_unary()
        return self.slots.leave_unary

    def _stream_slot(self, context: grpc.ServicerContext) -> Callable[[], None]:
        connection = context.peer()  # address and port: one per connection
        self.slots.enter_stream(connection)
        return lambda: self.slots.leave_stream(connection)


def _unary(
    enter: Callable[[grpc.ServicerContext], Callable[[], None]],
    read: _MessageReader,
    behaviour: Callable[..., Any],
    request_streaming: bool,
    per_message: bool,
) -> Callable[[Iterator[bytes], grpc.ServicerContext], Any]:
    def call(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        leave = enter(context)
        try:
            if request_streaming:
                with _Messages(raw, read, context, per_message) as messages:
                    return behaviour(messages, context)
            taken, message = read.one(raw, context)
            try:
                return behaviour(message, context)
            finally:
                read.budget.give_back(taken)
        finally:
            leave()

    return call


def _streaming(
    enter: Callable[[grpc.ServicerContext], Callable[[], None]],
    read: _MessageReader,
    behaviour: Callable[..., Iterator[Any]],
    request_streaming: bool,
    per_message: bool,
) -> Callable[[Iterator[bytes], grpc.ServicerContext], Iterator[Any]]:
    def call(raw: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
        leave = _once(enter(context))
        # Also when the call ends: a response iterator gRPC abandons is closed only when it is
        # garbage collected, and the slot must not wait for that.
        if not context.add_callback(leave):
            leave()
            return
        try:
            if request_streaming:
                with _Messages(raw, read, context, per_message) as messages:
                    yield from behaviour(messages, context)
                return
            taken, message = read.one(raw, context)
            try:
                yield from behaviour(message, context)
            finally:
                read.budget.give_back(taken)
        finally:
            leave()

    return call


class _MessageReader:
    """Reads one raw request message, admits it to the budget, parses it."""

    def __init__(self, budget: RequestBudget, parse: Parse, exempt: bool) -> None:
        self.budget = budget
        self._parse = parse
        self._exempt = exempt

    def one(self, raw: Iterator[bytes], context: grpc.ServicerContext) -> tuple[int, Any]:
        """The call's single message as ``(bytes taken from the budget, parsed message)``."""
        try:
            data = next(raw)
        except StopIteration:
            raise InvalidReport("the call ended without its request message") from None
        except grpc.RpcError:
            _cancelled(context)
        return self.admit(data)

    def admit(self, data: bytes) -> tuple[int, Any]:
        if self._exempt:
            if len(data) > MAX_EXEMPT_MESSAGE_BYTES:
                raise InvalidReport(
                    f"a health check request is at most {MAX_EXEMPT_MESSAGE_BYTES:,} bytes"
                )
            taken = 0
        else:
            taken = self.budget.take(len(data))
        try:
            return taken, self._parse(data)
        except DecodeError:
            self.budget.give_back(taken)
            raise InvalidReport("the request is not a valid protobuf message of its type") from None


class _Messages:
    """A stream's request messages, each admitted and parsed as the servicer asks for it and
    held against the budget until it asks for the next one.

    The servicer may read on a thread of its own (ClassifyStream reads ahead); once the call
    is over (``__exit__``) a message that still arrives on that thread is not admitted, so
    nothing is taken from the budget that no one would give back."""

    def __init__(
        self,
        raw: Iterator[bytes],
        read: _MessageReader,
        context: grpc.ServicerContext,
        per_message: bool,
    ) -> None:
        self._raw = raw
        self._read = read
        self._context = context
        self._per_message = per_message
        self._taken = 0
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> _Messages:
        return self

    def __next__(self) -> Any:
        with self._lock:
            self._give_back()
        try:
            data = next(self._raw)
        except grpc.RpcError:
            _cancelled(self._context)
        with self._lock:
            if self._closed:
                raise StopIteration
            try:
                self._taken, message = self._read.admit(data)
            except (CapacityRefused, InvalidReport) as err:
                if self._per_message:
                    return Unread(err)
                raise
        return message

    def __enter__(self) -> _Messages:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            self._give_back()

    def _give_back(self) -> None:
        taken, self._taken = self._taken, 0
        self._read.budget.give_back(taken)


def _unparsed(data: bytes) -> bytes:
    return data


def _no_slot(context: grpc.ServicerContext) -> Callable[[], None]:
    return _nothing


def _nothing() -> None:
    pass


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """``action``, run at most once however many threads call it."""
    gate = threading.Lock()

    def run() -> None:
        if gate.acquire(blocking=False):
            action()

    return run


def _cancelled(context: grpc.ServicerContext) -> NoReturn:
    # The client cancelled (or its deadline passed) while we waited for a message: say so in
    # the call's status instead of letting gRPC's bare RpcError look like a server bug.
    context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled by the client")
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker
