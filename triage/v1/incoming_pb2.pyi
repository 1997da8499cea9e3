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
