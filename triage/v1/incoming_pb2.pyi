from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IncomingClassifyRequest(_message.Message):
    __slots__ = ("text", "report_id", "max_explanation_terms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_EXPLANATION_TERMS_FIELD_NUMBER: _ClassVar[int]
    text: bytes
    report_id: bytes
    max_explanation_terms: int
    def __init__(self, text: _Optional[bytes] = ..., report_id: _Optional[bytes] = ..., max_explanation_terms: _Optional[int] = ...) -> None: ...

class IncomingClassifyBatchRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[IncomingClassifyRequest]
    def __init__(self, reports: _Optional[_Iterable[_Union[IncomingClassifyRequest, _Mapping]]] = ...) -> None: ...

class IncomingSubmitFeedbackRequest(_message.Message):
    __slots__ = ("decision_id", "report_id", "label", "reviewer", "note", "feedback_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: bytes
    report_id: bytes
    label: bytes
    reviewer: bytes
    note: bytes
    feedback_id: bytes
    def __init__(self, decision_id: _Optional[bytes] = ..., report_id: _Optional[bytes] = ..., label: _Optional[bytes] = ..., reviewer: _Optional[bytes] = ..., note: _Optional[bytes] = ..., feedback_id: _Optional[bytes] = ...) -> None: ...

class IncomingGetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: bytes
    def __init__(self, decision_id: _Optional[bytes] = ...) -> None: ...
