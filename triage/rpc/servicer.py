"""TriageService servicer: each RPC converts the request, calls the service once, converts out."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from triage.core.errors import TriageError
from triage.rpc import convert
from triage.runtime.service import ClassificationService, Deadline
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc


class TriageServicer(pb_grpc.TriageServiceServicer):
    """Thin: no domain logic here; errors propagate to the status interceptor."""

    def __init__(self, service: ClassificationService) -> None:
        self.service = service

    def Classify(  # noqa: N802 - generated base class names
        self, request: pb.ClassifyRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyResponse:
        report = convert.to_report(request)
        prediction = self.service.classify(report, Deadline.after(context.time_remaining()))
        return convert.to_response(prediction, report.report_id)

    def ClassifyBatch(  # noqa: N802
        self, request: pb.ClassifyBatchRequest, context: grpc.ServicerContext
    ) -> pb.ClassifyBatchResponse:
        reports = [convert.to_report(r) for r in request.reports]
        version, outcomes = self.service.classify_batch(
            reports, Deadline.after(context.time_remaining())
        )
        return pb.ClassifyBatchResponse(
            results=[convert.to_outcome_response(o) for o in outcomes], model_version=version
        )

    def ClassifyStream(  # noqa: N802
        self, request_iterator: Iterator[pb.ClassifyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassifyResponse]:
        # Iteration ends when the client half-closes; a cancelled call stops the iterator.
        for request in request_iterator:
            report = convert.to_report(request)
            try:
                prediction = self.service.classify(report, Deadline.after(context.time_remaining()))
            except TriageError as err:  # one bad report must not end the stream
                yield convert.to_error_response(report.report_id, err)
            else:
                yield convert.to_response(prediction, report.report_id)

    def GetModelInfo(  # noqa: N802
        self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> pb.ModelInfo:
        return convert.to_model_info(self.service.model_info())

    def ReloadModel(  # noqa: N802
        self, request: pb.ReloadModelRequest, context: grpc.ServicerContext
    ) -> pb.ReloadModelResponse:
        result = self.service.reload()
        return pb.ReloadModelResponse(
            previous_version=result.previous_version or "",
            model_version=result.model_version,
            changed=result.changed,
        )
