from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_REASON_UNSPECIFIED: _ClassVar[ReviewReason]
    REVIEW_REASON_LOW_CONFIDENCE: _ClassVar[ReviewReason]
    REVIEW_REASON_NEAR_TIE: _ClassVar[ReviewReason]
    REVIEW_REASON_NON_ENGLISH: _ClassVar[ReviewReason]
    REVIEW_REASON_NO_SIGNAL: _ClassVar[ReviewReason]
    REVIEW_REASON_MIXED_DOCUMENT: _ClassVar[ReviewReason]
REVIEW_REASON_UNSPECIFIED: ReviewReason
REVIEW_REASON_LOW_CONFIDENCE: ReviewReason
REVIEW_REASON_NEAR_TIE: ReviewReason
REVIEW_REASON_NON_ENGLISH: ReviewReason
REVIEW_REASON_NO_SIGNAL: ReviewReason
REVIEW_REASON_MIXED_DOCUMENT: ReviewReason

class ClassifyRequest(_message.Message):
    __slots__ = ("text", "report_id", "max_explanation_terms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_EXPLANATION_TERMS_FIELD_NUMBER: _ClassVar[int]
    text: str
    report_id: str
    max_explanation_terms: int
    def __init__(self, text: _Optional[str] = ..., report_id: _Optional[str] = ..., max_explanation_terms: _Optional[int] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("report_id", "label", "confidence", "scores", "needs_review", "model_version", "explanation", "error", "decision_id", "review_reasons", "secondary_label", "language", "segments", "evidence_sentences", "evidence_terms")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REVIEW_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASONS_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_LABEL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_TERMS_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    label: str
    confidence: float
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    needs_review: bool
    model_version: str
    explanation: _containers.RepeatedCompositeFieldContainer[ExplanationTerm]
    error: ReportError
    decision_id: str
    review_reasons: _containers.RepeatedScalarFieldContainer[ReviewReason]
    secondary_label: str
    language: str
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    evidence_sentences: _containers.RepeatedCompositeFieldContainer[TextSpan]
    evidence_terms: _containers.RepeatedCompositeFieldContainer[EvidenceTerm]
    def __init__(self, report_id: _Optional[str] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., needs_review: _Optional[bool] = ..., model_version: _Optional[str] = ..., explanation: _Optional[_Iterable[_Union[ExplanationTerm, _Mapping]]] = ..., error: _Optional[_Union[ReportError, _Mapping]] = ..., decision_id: _Optional[str] = ..., review_reasons: _Optional[_Iterable[_Union[ReviewReason, str]]] = ..., secondary_label: _Optional[str] = ..., language: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., evidence_sentences: _Optional[_Iterable[_Union[TextSpan, _Mapping]]] = ..., evidence_terms: _Optional[_Iterable[_Union[EvidenceTerm, _Mapping]]] = ...) -> None: ...

class TextSpan(_message.Message):
    __slots__ = ("start", "end", "weight")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    weight: float
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class EvidenceTerm(_message.Message):
    __slots__ = ("term", "start", "end", "weight")
    TERM_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    term: str
    start: int
    end: int
    weight: float
    def __init__(self, term: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("start", "end", "label", "confidence", "scores", "review_reasons")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASONS_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    label: str
    confidence: float
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    review_reasons: _containers.RepeatedScalarFieldContainer[ReviewReason]
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., review_reasons: _Optional[_Iterable[_Union[ReviewReason, str]]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    probability: float
    def __init__(self, label: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class ExplanationTerm(_message.Message):
    __slots__ = ("term", "weight")
    TERM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    term: str
    weight: float
    def __init__(self, term: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ReportError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ClassifyBatchRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[ClassifyRequest]
    def __init__(self, reports: _Optional[_Iterable[_Union[ClassifyRequest, _Mapping]]] = ...) -> None: ...

class ClassifyBatchResponse(_message.Message):
    __slots__ = ("results", "model_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ClassifyResponse]
    model_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[ClassifyResponse, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("version", "labels", "created_time", "review_threshold", "review_target_precision", "candidate", "metrics", "limits")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    REVIEW_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REVIEW_TARGET_PRECISION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    version: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    created_time: str
    review_threshold: float
    review_target_precision: float
    candidate: str
    metrics: _containers.ScalarMap[str, float]
    limits: Limits
    def __init__(self, version: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., created_time: _Optional[str] = ..., review_threshold: _Optional[float] = ..., review_target_precision: _Optional[float] = ..., candidate: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_text_chars", "max_batch_size", "max_message_bytes", "max_report_id_chars")
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_REPORT_ID_CHARS_FIELD_NUMBER: _ClassVar[int]
    max_text_chars: int
    max_batch_size: int
    max_message_bytes: int
    max_report_id_chars: int
    def __init__(self, max_text_chars: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_report_id_chars: _Optional[int] = ...) -> None: ...

class ReloadModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadModelResponse(_message.Message):
    __slots__ = ("previous_version", "model_version", "changed")
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    previous_version: str
    model_version: str
    changed: bool
    def __init__(self, previous_version: _Optional[str] = ..., model_version: _Optional[str] = ..., changed: _Optional[bool] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("decision_id", "report_id", "label", "reviewer", "note", "feedback_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    report_id: str
    label: str
    reviewer: str
    note: str
    feedback_id: str
    def __init__(self, decision_id: _Optional[str] = ..., report_id: _Optional[str] = ..., label: _Optional[str] = ..., reviewer: _Optional[str] = ..., note: _Optional[str] = ..., feedback_id: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("feedback_id", "decision_id", "old_label", "new_label")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_LABEL_FIELD_NUMBER: _ClassVar[int]
    NEW_LABEL_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    decision_id: str
    old_label: str
    new_label: str
    def __init__(self, feedback_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., old_label: _Optional[str] = ..., new_label: _Optional[str] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class DecisionRecord(_message.Message):
    __slots__ = ("decision_id", "report_id", "received_time", "model_version", "source", "label", "confidence", "scores", "needs_review", "review_reasons", "caller", "latency_ms", "current_label", "feedback", "shadows", "text_held")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REVIEW_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASONS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LABEL_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    SHADOWS_FIELD_NUMBER: _ClassVar[int]
    TEXT_HELD_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    report_id: str
    received_time: str
    model_version: str
    source: str
    label: str
    confidence: float
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    needs_review: bool
    review_reasons: _containers.RepeatedScalarFieldContainer[str]
    caller: str
    latency_ms: float
    current_label: str
    feedback: _containers.RepeatedCompositeFieldContainer[FeedbackEntry]
    shadows: _containers.RepeatedCompositeFieldContainer[ShadowAnswer]
    text_held: bool
    def __init__(self, decision_id: _Optional[str] = ..., report_id: _Optional[str] = ..., received_time: _Optional[str] = ..., model_version: _Optional[str] = ..., source: _Optional[str] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., needs_review: _Optional[bool] = ..., review_reasons: _Optional[_Iterable[str]] = ..., caller: _Optional[str] = ..., latency_ms: _Optional[float] = ..., current_label: _Optional[str] = ..., feedback: _Optional[_Iterable[_Union[FeedbackEntry, _Mapping]]] = ..., shadows: _Optional[_Iterable[_Union[ShadowAnswer, _Mapping]]] = ..., text_held: _Optional[bool] = ...) -> None: ...

class FeedbackEntry(_message.Message):
    __slots__ = ("feedback_id", "old_label", "new_label", "reviewer", "note", "created_time", "source", "recorded_by")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_LABEL_FIELD_NUMBER: _ClassVar[int]
    NEW_LABEL_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    old_label: str
    new_label: str
    reviewer: str
    note: str
    created_time: str
    source: str
    recorded_by: str
    def __init__(self, feedback_id: _Optional[str] = ..., old_label: _Optional[str] = ..., new_label: _Optional[str] = ..., reviewer: _Optional[str] = ..., note: _Optional[str] = ..., created_time: _Optional[str] = ..., source: _Optional[str] = ..., recorded_by: _Optional[str] = ...) -> None: ...

class ShadowAnswer(_message.Message):
    __slots__ = ("model_version", "label", "confidence", "needs_review")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REVIEW_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    label: str
    confidence: float
    needs_review: bool
    def __init__(self, model_version: _Optional[str] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., needs_review: _Optional[bool] = ...) -> None: ...
