"""TriageService servicer: each RPC converts the request, calls the service once, converts out."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

import grpc

from triage.core.errors import TriageError
from triage.core.scoring import Outcome
from triage.rpc import call_record, convert
from triage.rpc.intake import Unread
from triage.runtime.recording import Origin
from triage.runtime.service import ClassificationService, Deadline
from triage.v1 import incoming_pb2 as incoming
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["TriageService"].full_name
# Answers a stream message refused before it was read (an intake.Unread) with an error result.
ANSWERS_PER_MESSAGE = frozenset({f"/{SERVICE_NAME}/ClassifyStream"})
# Messages of one stream read and queued for scoring ahead of the answers sent back: enough to
# fill the batches of every model process, few enough that a stream holds a bounded amount of
# text.
STREAM_IN_FLIGHT = 128
STREAM_IN_FLIGHT_BYTES = 1 << 20  # of report text; beyond it the stream reads no further ahead
STREAM_READER_GRACE_SECONDS = 0.5


class TriageServicer(pb_grpc.TriageServiceServicer):
    """Thin: no domain logic here; errors propagate to the status interceptor. Each RPC notes
    its domain results on the call's record, for the metrics and the access log. Requests
    arrive as the server's own message types (text and ids as bytes: see incoming.proto)."""

    def __init__(self, service: ClassificationService) -> None:
        self.service = service

    def Classify(  # noqa: N802 - generated base class names
        self, request: incoming.IncomingClassifyRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyResponse:
        report = convert.to_report(request)
        call_record.record_report_id(report.report_id)  # a refusal is logged under its id
        outcome = self.service.classify(
            report, Deadline.after(context.time_remaining()), _origin("Classify", context)
        )
        call_record.record_outcomes((outcome,))
        return convert.to_outcome_response(outcome)

    def ClassifyBatch(  # noqa: N802
        self, request: incoming.IncomingClassifyBatchRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyBatchResponse:
        reports = convert.to_reports(request)
        version, outcomes = self.service.classify_batch(
            reports,
            Deadline.after(context.time_remaining()),
            _origin("ClassifyBatch", context),
        )
        call_record.record_outcomes(outcomes)
        return convert.to_batch_response(version, outcomes)

    def ClassifyStream(  # noqa: N802
        self,
        request_iterator: Iterator[incoming.IncomingClassifyRequest | Unread],
        context: grpc.ServicerContext,
    ) -> Iterator[pb.ClassifyResponse]:
        # Pipelined: a reader thread takes each message as it arrives and puts it in the
        # batcher's queue, ahead of the answers by at most STREAM_IN_FLIGHT reports and
        # STREAM_IN_FLIGHT_BYTES of their text; this thread answers in request order as each
        # is scored. Iteration ends when the client half-closes; a cancelled call stops the
        # iterator, and the reader hands that on.
        caller = _caller(context)
        in_flight = _InFlight(STREAM_IN_FLIGHT, STREAM_IN_FLIGHT_BYTES)

        def read() -> None:
            try:
                for request in request_iterator:
                    size = (
                        len(request.text)
                        if isinstance(request, incoming.IncomingClassifyRequest)
                        else 0
                    )
                    if not in_flight.reserve(size):
                        return  # the call is over
                    in_flight.append(self._start_one(request, context, caller), size)
            except BaseException as err:  # the call was cancelled or failed: end with it
                in_flight.end(err)
                return
            in_flight.end(None)

        reader = threading.Thread(target=read, name="stream-reader", daemon=True)
        reader.start()
        try:
            while (waiting := in_flight.next()) is not None:
                outcome = waiting()
                in_flight.answered()
                call_record.record_outcomes((outcome,))
                yield convert.to_outcome_response(outcome)
        finally:
            in_flight.stop()
            # The reader ends with the call: at once if it is waiting for room, when gRPC ends
            # the request iterator if it is waiting for a message (which cannot happen before
            # this handler returns, so it is not waited for; intake admits nothing after).
            reader.join(timeout=STREAM_READER_GRACE_SECONDS)

    def GetModelInfo(  # noqa: N802
        self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> pb.ModelInfo:
        info = self.service.model_info()
        call_record.record_model_version(info.version)
        return convert.to_model_info(info)

    def ReloadModel(  # noqa: N802
        self, request: pb.ReloadModelRequest, context: grpc.ServicerContext
    ) -> pb.ReloadModelResponse:
        result = self.service.reload()
        call_record.record_model_version(result.model_version)
        return convert.to_reload_response(result)

    def SubmitFeedback(  # noqa: N802
        self, request: incoming.IncomingSubmitFeedbackRequest, context: grpc.ServicerContext
    ) -> pb.SubmitFeedbackResponse:
        fields = convert.to_feedback_fields(request)
        recorded = self.service.submit_feedback(recorded_by=_caller(context), **fields)
        return convert.to_feedback_response(recorded)

    def GetDecision(  # noqa: N802
        self, request: incoming.IncomingGetDecisionRequest, context: grpc.ServicerContext
    ) -> pb.DecisionRecord:
        view = self.service.decision(convert.to_decision_id(request))
        return convert.to_decision_record(view)

    def _start_one(
        self,
        request: incoming.IncomingClassifyRequest | Unread,
        context: grpc.ServicerContext,
        caller: str,
    ) -> Callable[[], Outcome]:
        """Start scoring one message of a stream; a function that waits for its outcome (an
        error outcome for a refused report: one bad report must not end the stream)."""
        report_id = ""
        try:
            report = convert.to_report(request)
            report_id = report.report_id
            # Each message of a stream is its own decision, received when it arrived.
            collect = self.service.classify_later(
                report,
                Deadline.after(context.time_remaining()),
                Origin("ClassifyStream", caller),
            )
        except TriageError as err:
            refused = Outcome(report_id, error=err)
            return lambda: refused

        def outcome() -> Outcome:
            try:
                return collect()
            except TriageError as err:
                return Outcome(report_id, error=err)

        return outcome


class _InFlight:
    """A stream's reports between being read and being answered, in order: at most ``most``
    of them and ``most_bytes`` of their text (one larger report still goes, alone), so a
    stream holds a bounded amount however fast its client sends."""

    def __init__(self, most: int, most_bytes: int) -> None:
        self._most, self._most_bytes = most, most_bytes
        self._waiting: deque[tuple[Callable[[], Outcome], int]] = deque()
        self._count = self._bytes = 0  # reserved: read and not yet answered
        self._ended = False  # the reader has read its last message
        self._error: BaseException | None = None  # ... and what ended the call, if not the client
        self._stopped = False
        self._changed = threading.Condition()

    def reserve(self, size: int) -> bool:
        """Wait for room for a report of ``size`` bytes; False if the stream stopped."""
        with self._changed:
            while (
                not self._stopped
                and self._count
                and (self._count >= self._most or self._bytes + size > self._most_bytes)
            ):
                self._changed.wait()
            if self._stopped:
                return False
            self._count += 1
            self._bytes += size
            return True

    def append(self, waiting: Callable[[], Outcome], size: int) -> None:
        with self._changed:
            self._waiting.append((waiting, size))
            self._changed.notify_all()

    def end(self, error: BaseException | None) -> None:
        """No more reports: the client closed (None), or ``error`` ended the call."""
        with self._changed:
            self._ended, self._error = True, error
            self._changed.notify_all()

    def next(self) -> Callable[[], Outcome] | None:
        """The oldest report's outcome to wait for; None at the end; the error that ended it."""
        with self._changed:
            while not self._waiting and not self._ended:
                self._changed.wait()
            if self._waiting:
                return self._waiting[0][0]
            if self._error is not None:
                raise self._error
            return None

    def answered(self) -> None:
        """The oldest report has its answer: its room is free."""
        with self._changed:
            _, size = self._waiting.popleft()
            self._count -= 1
            self._bytes -= size
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _caller(context: grpc.ServicerContext) -> str:
    """Who is calling: the token's name (noted by the token check), else the client
    certificate's subject (mutual TLS), else "" (an anonymous caller)."""
    name = call_record.current_caller()
    if name:
        return name
    auth = context.auth_context()
    for key in ("x509_subject", "x509_common_name"):
        values = auth.get(key)
        if values:
            raw = values[0]
            return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))[:256]
    return ""


def _origin(source: str, context: grpc.ServicerContext) -> Origin:
    """A unary call's origin: its caller, and when it arrived (its latency counts from there)."""
    started, received_at = call_record.current_times()
    return Origin(source, _caller(context), received_at=received_at, started=started)


def add_to_server(servicer: TriageServicer, server: grpc.Server) -> None:
    """Register ``servicer`` with the server's request types (the generated
    ``add_TriageServiceServicer_to_server`` would parse requests as triage.proto's, which
    refuses a whole request for one invalid UTF-8 byte)."""
    handlers = {
        "Classify": grpc.unary_unary_rpc_method_handler(
            servicer.Classify,
            request_deserializer=incoming.IncomingClassifyRequest.FromString,
            response_serializer=pb.ClassifyResponse.SerializeToString,
        ),
        "ClassifyBatch": grpc.unary_unary_rpc_method_handler(
            servicer.ClassifyBatch,
            request_deserializer=incoming.IncomingClassifyBatchRequest.FromString,
            response_serializer=pb.ClassifyBatchResponse.SerializeToString,
        ),
        "ClassifyStream": grpc.stream_stream_rpc_method_handler(
            servicer.ClassifyStream,
            request_deserializer=incoming.IncomingClassifyRequest.FromString,
            response_serializer=pb.ClassifyResponse.SerializeToString,
        ),
        "SubmitFeedback": grpc.unary_unary_rpc_method_handler(
            servicer.SubmitFeedback,
            request_deserializer=incoming.IncomingSubmitFeedbackRequest.FromString,
            response_serializer=pb.SubmitFeedbackResponse.SerializeToString,
        ),
        "GetDecision": grpc.unary_unary_rpc_method_handler(
            servicer.GetDecision,
            request_deserializer=incoming.IncomingGetDecisionRequest.FromString,
            response_serializer=pb.DecisionRecord.SerializeToString,
        ),
        "GetModelInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetModelInfo,
            request_deserializer=pb.GetModelInfoRequest.FromString,
            response_serializer=pb.ModelInfo.SerializeToString,
        ),
        "ReloadModel": grpc.unary_unary_rpc_method_handler(
            servicer.ReloadModel,
            request_deserializer=pb.ReloadModelRequest.FromString,
            response_serializer=pb.ReloadModelResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
