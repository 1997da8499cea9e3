"""TriageService servicer: each RPC converts the request, calls the service once, converts out."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from triage.core.errors import TriageError
from triage.core.scoring import Outcome
from triage.rpc import call_record, convert
from triage.runtime.service import ClassificationService, Deadline
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc


class TriageServicer(pb_grpc.TriageServiceServicer):
    """Thin: no domain logic here; errors propagate to the status interceptor. Each RPC notes
    its domain results on the call's record, for the metrics and the access log."""

    def __init__(self, service: ClassificationService) -> None:
        self.service = service

    def Classify(  # noqa: N802 - generated base class names
        self, request: pb.ClassifyRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyResponse:
        report = convert.to_report(request)
        prediction = self.service.classify(report, Deadline.after(context.time_remaining()))
        call_record.record_outcomes((Outcome(report.report_id, prediction),))
        return convert.to_response(prediction, report.report_id)

    def ClassifyBatch(  # noqa: N802
        self, request: pb.ClassifyBatchRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyBatchResponse:
        reports = [convert.to_report(r) for r in request.reports]
        version, outcomes = self.service.classify_batch(
            reports, Deadline.after(context.time_remaining())
        )
        call_record.record_outcomes(outcomes)
        return convert.to_batch_response(version, outcomes)

    def ClassifyStream(  # noqa: N802
        self, request_iterator: Iterator[pb.ClassifyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassifyResponse]:
        # Iteration ends when the client half-closes; a cancelled call stops the iterator.
        for request in request_iterator:
            report = convert.to_report(request)
            try:
                prediction = self.service.classify(report, Deadline.after(context.time_remaining()))
                outcome = Outcome(report.report_id, prediction)
            except TriageError as err:  # one bad report must not end the stream
                outcome = Outcome(report.report_id, error=err)
            call_record.record_outcomes((outcome,))
            yield convert.to_outcome_response(outcome)

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
