"""Convert between protobuf messages and the service's domain objects."""

from __future__ import annotations

from collections.abc import Sequence

from triage.core.errors import InvalidReport, TriageError
from triage.core.model import DEFAULT_TOP_TERMS, Prediction
from triage.core.scoring import Outcome, Report
from triage.rpc.status_codes import status_for
from triage.runtime.live import ReloadResult
from triage.runtime.service import ModelInfo
from triage.v1 import triage_pb2 as pb


def to_report(request: pb.ClassifyRequest) -> Report:
    top = (
        request.max_explanation_terms
        if request.HasField("max_explanation_terms")
        else DEFAULT_TOP_TERMS
    )
    return Report(text=request.text, report_id=request.report_id, top_terms=top)


def to_response(prediction: Prediction, report_id: str) -> pb.ClassifyResponse:
    return pb.ClassifyResponse(
        report_id=report_id,
        label=prediction.label,
        confidence=prediction.confidence,
        scores=[pb.LabelScore(label=label, probability=p) for label, p in prediction.scores],
        needs_review=prediction.needs_review,
        model_version=prediction.model_version,
        explanation=[pb.ExplanationTerm(term=t, weight=w) for t, w in prediction.top_terms],
    )


def to_error_response(report_id: str, error: TriageError) -> pb.ClassifyResponse:
    code, message = status_for(error)
    return pb.ClassifyResponse(
        report_id=report_id, error=pb.ReportError(code=code.value[0], message=message)
    )


def to_outcome_response(outcome: Outcome) -> pb.ClassifyResponse:
    if outcome.prediction is not None:
        return to_response(outcome.prediction, outcome.report_id)
    return to_error_response(outcome.report_id, outcome.error or InvalidReport("not scored"))


def to_batch_response(version: str, outcomes: Sequence[Outcome]) -> pb.ClassifyBatchResponse:
    return pb.ClassifyBatchResponse(
        results=[to_outcome_response(o) for o in outcomes], model_version=version
    )


def to_model_info(info: ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(
        version=info.version,
        labels=list(info.labels),
        created_time=info.created,
        review_threshold=info.review_threshold,
        review_target_precision=info.review_target_precision,
        candidate=info.candidate,
        metrics=info.metrics,
        limits=pb.Limits(
            max_text_chars=info.limits.max_text_chars,
            max_batch_size=info.limits.max_batch_size,
            max_message_bytes=info.limits.max_message_bytes,
        ),
    )


def to_reload_response(result: ReloadResult) -> pb.ReloadModelResponse:
    return pb.ReloadModelResponse(
        previous_version=result.previous_version or "",
        model_version=result.model_version,
        changed=result.changed,
    )
