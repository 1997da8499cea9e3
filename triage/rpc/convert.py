"""Convert between protobuf messages and the service's domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from triage.core.errors import InvalidReport, TriageError
from triage.core.model import (
    BELOW_THRESHOLD,
    DEFAULT_TOP_TERMS,
    MIXED_DOCUMENT,
    NEAR_TIE,
    NO_EVIDENCE,
    NON_ENGLISH,
    Prediction,
)
from triage.core.scoring import Outcome, Report
from triage.rpc.intake import Unread
from triage.rpc.status_codes import status_for
from triage.runtime.live import ReloadResult
from triage.runtime.service import ModelInfo
from triage.store.records import DecisionView, Feedback
from triage.v1 import incoming_pb2 as incoming
from triage.v1 import triage_pb2 as pb

# Ids are echoed and written to the access log, by refused calls too: bounded, like the text.
MAX_REPORT_ID_CHARS = 256
_MAX_UTF8_BYTES_PER_CHAR = 4


def to_report(request: incoming.IncomingClassifyRequest | Unread) -> Report:
    """The report a request asks about. Text and id arrive as bytes and are decoded here, so
    that invalid UTF-8 or an over-long id refuses only this report (its ``problem``); a stream
    message refused before it was read raises its error."""
    if isinstance(request, Unread):
        raise request.error
    top = (
        request.max_explanation_terms
        if request.HasField("max_explanation_terms")
        else DEFAULT_TOP_TERMS
    )
    report_id, id_problem = _report_id(request.report_id)
    try:
        text = request.text.decode("utf-8")
    except UnicodeDecodeError as err:
        problem = f"text is not valid UTF-8 (byte {err.start:,} of {len(request.text):,})"
        return Report(text="", report_id=report_id, top_terms=top, problem=problem)
    return Report(text=text, report_id=report_id, top_terms=top, problem=id_problem)


def to_reports(request: incoming.IncomingClassifyBatchRequest) -> list[Report]:
    return [to_report(r) for r in request.reports]


def _report_id(raw: bytes) -> tuple[str, str | None]:
    """The id, or ``""`` and why it was refused (an id refused is never echoed or logged)."""
    if len(raw) > MAX_REPORT_ID_CHARS * _MAX_UTF8_BYTES_PER_CHAR:  # too long without decoding
        return (
            "",
            f"report_id is {len(raw):,} bytes, over the limit of {MAX_REPORT_ID_CHARS} characters",
        )
    try:
        report_id = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return "", f"report_id is not valid UTF-8 (byte {err.start:,})"
    if len(report_id) > MAX_REPORT_ID_CHARS:
        return "", (
            f"report_id has {len(report_id):,} characters, over the limit of {MAX_REPORT_ID_CHARS}"
        )
    return report_id, None


def to_response(
    prediction: Prediction, report_id: str, decision_id: str = ""
) -> pb.ClassifyResponse:
    return pb.ClassifyResponse(
        report_id=report_id,
        decision_id=decision_id,
        label=prediction.label,
        confidence=prediction.confidence,
        scores=[pb.LabelScore(label=label, probability=p) for label, p in prediction.scores],
        needs_review=prediction.needs_review,
        model_version=prediction.model_version,
        explanation=[pb.ExplanationTerm(term=t, weight=w) for t, w in prediction.top_terms],
        review_reasons=review_reasons(prediction.review_reasons),
        secondary_label=prediction.secondary_label,
        language=prediction.language,
        segments=[
            pb.Segment(
                start=s.start,
                end=s.end,
                label=s.label,
                confidence=s.confidence,
                scores=[pb.LabelScore(label=label, probability=p) for label, p in s.scores],
                review_reasons=review_reasons(s.review_reasons),
            )
            for s in prediction.segments
        ],
        evidence_sentences=[
            pb.TextSpan(start=s.start, end=s.end, weight=s.weight)
            for s in prediction.evidence.sentences
        ],
        evidence_terms=[
            pb.EvidenceTerm(term=t.term, start=t.start, end=t.end, weight=t.weight)
            for t in prediction.evidence.terms
        ],
    )


# The model's review reasons (stable strings, as the decision record keeps them) on the wire.
_REASONS = {
    NO_EVIDENCE: pb.REVIEW_REASON_NO_SIGNAL,
    NON_ENGLISH: pb.REVIEW_REASON_NON_ENGLISH,
    MIXED_DOCUMENT: pb.REVIEW_REASON_MIXED_DOCUMENT,
    BELOW_THRESHOLD: pb.REVIEW_REASON_LOW_CONFIDENCE,
    NEAR_TIE: pb.REVIEW_REASON_NEAR_TIE,
}


def review_reasons(reasons: Sequence[str]) -> list[pb.ReviewReason]:
    """``reasons`` as the proto's ReviewReason values (an unknown one as UNSPECIFIED)."""
    return [_REASONS.get(r, pb.REVIEW_REASON_UNSPECIFIED) for r in reasons]


def to_error_response(report_id: str, error: TriageError) -> pb.ClassifyResponse:
    code, message = status_for(error)
    return pb.ClassifyResponse(
        report_id=report_id, error=pb.ReportError(code=code.value[0], message=message)
    )


def to_outcome_response(outcome: Outcome) -> pb.ClassifyResponse:
    if outcome.prediction is not None:
        return to_response(outcome.prediction, outcome.report_id, outcome.decision_id)
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
            max_report_id_chars=MAX_REPORT_ID_CHARS,
        ),
    )


def to_reload_response(result: ReloadResult) -> pb.ReloadModelResponse:
    return pb.ReloadModelResponse(
        previous_version=result.previous_version or "",
        model_version=result.model_version,
        changed=result.changed,
    )


# Feedback fields and their limits; a field over its limit or not UTF-8 refuses the request.
_FEEDBACK_FIELDS = {
    "decision_id": 36,
    "report_id": MAX_REPORT_ID_CHARS,
    "label": 64,
    "reviewer": 256,
    "note": 2_000,
    "feedback_id": 36,
}


def to_feedback_fields(request: incoming.IncomingSubmitFeedbackRequest) -> dict[str, str]:
    """The feedback request's fields as text, each checked for UTF-8 and its length."""
    fields = {
        name: _text_field(name, getattr(request, name), limit)
        for name, limit in _FEEDBACK_FIELDS.items()
    }
    if not fields["decision_id"] and not fields["report_id"]:
        raise InvalidReport("send a decision_id (or a report_id) to say which decision to correct")
    if not fields["label"]:
        raise InvalidReport("label is empty: send the right category")
    return fields


def to_decision_id(request: incoming.IncomingGetDecisionRequest) -> str:
    decision_id = _text_field("decision_id", request.decision_id, _FEEDBACK_FIELDS["decision_id"])
    if not decision_id:
        raise InvalidReport("decision_id is empty: send the id a ClassifyResponse carried")
    return decision_id


def _text_field(name: str, raw: bytes, limit: int) -> str:
    if len(raw) > limit * _MAX_UTF8_BYTES_PER_CHAR:
        raise InvalidReport(f"{name} is {len(raw):,} bytes, over the limit of {limit:,} characters")
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidReport(f"{name} is not valid UTF-8 (byte {err.start:,})") from None
    if len(value) > limit:
        raise InvalidReport(f"{name} has {len(value):,} characters, over the limit of {limit:,}")
    if "\x00" in value:  # no id, label or name holds one; PostgreSQL cannot store it in text
        raise InvalidReport(f"{name} contains a NUL character (U+0000): remove it")
    return value.strip()


def to_feedback_response(feedback: Feedback) -> pb.SubmitFeedbackResponse:
    return pb.SubmitFeedbackResponse(
        feedback_id=feedback.feedback_id,
        decision_id=feedback.decision_id,
        old_label=feedback.old_label,
        new_label=feedback.new_label,
    )


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_decision_record(view: DecisionView) -> pb.DecisionRecord:
    d = view.decision
    return pb.DecisionRecord(
        decision_id=d.decision_id,
        report_id=d.report_id,
        received_time=_time(d.received_at),
        model_version=d.model_version,
        source=d.source,
        label=d.label,
        confidence=d.confidence,
        scores=[
            pb.LabelScore(label=label, probability=p)
            for label, p in sorted(d.scores.items(), key=lambda item: -item[1])
        ],
        needs_review=d.needs_review,
        review_reasons=list(d.reasons),
        caller=d.caller,
        latency_ms=d.latency_ms or 0.0,
        current_label=view.current_label,
        feedback=[
            pb.FeedbackEntry(
                feedback_id=f.feedback_id,
                old_label=f.old_label,
                new_label=f.new_label,
                reviewer=f.reviewer,
                note=f.note,
                created_time=_time(f.created_at),
                source=f.source,
                recorded_by=f.recorded_by,
            )
            for f in view.feedback
        ],
        shadows=[
            pb.ShadowAnswer(
                model_version=s.model_version,
                label=s.label,
                confidence=s.confidence,
                needs_review=s.needs_review,
            )
            for s in view.shadows
        ],
        text_held=view.has_text,
    )
