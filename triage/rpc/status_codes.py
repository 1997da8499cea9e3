"""The one table from domain errors to what the caller is told: a gRPC status code and message."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import PurePosixPath

import grpc

from triage.core.errors import (
    DeadlineExceeded,
    InvalidReport,
    ModelLoadError,
    ModelUnavailable,
    Overloaded,
    TriageError,
)
from triage.store.errors import (
    InvalidFeedback,
    NoRecord,
    RecordUnavailable,
    StoreError,
    UnknownDecision,
    UnstorableValue,
)

log = logging.getLogger(__name__)

# An absolute path in a message: a slash not preceded by a name character, then no separator.
# One character class repeated: linear time on any message.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/[^\s'\",;:()\[\]]+")

STATUS_OF: dict[type[TriageError], grpc.StatusCode] = {
    InvalidReport: grpc.StatusCode.INVALID_ARGUMENT,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelUnavailable: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelLoadError: grpc.StatusCode.FAILED_PRECONDITION,
    RecordUnavailable: grpc.StatusCode.UNAVAILABLE,
    StoreError: grpc.StatusCode.UNAVAILABLE,
    UnstorableValue: grpc.StatusCode.INVALID_ARGUMENT,  # before StoreError: a subclass
    UnknownDecision: grpc.StatusCode.NOT_FOUND,
    InvalidFeedback: grpc.StatusCode.INVALID_ARGUMENT,
    NoRecord: grpc.StatusCode.FAILED_PRECONDITION,
}


def code_for(error: BaseException) -> grpc.StatusCode:
    """The status code for ``error``: its entry in :data:`STATUS_OF`, INTERNAL if it has none."""
    return _listed(error) or grpc.StatusCode.INTERNAL


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for ``error``.

    Domain errors carry messages written for the caller. Anything else is a server bug: the
    caller gets INTERNAL and an incident id, the traceback goes to the log under that id.
    """
    code = _listed(error)
    if code is not None:
        return code, without_server_paths(str(error))
    incident = uuid.uuid4().hex[:12]
    log.error("unexpected error (incident %s)", incident, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); see the server log"


def without_server_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last two parts (``v3/model.skops``):
    callers learn which model version or file, never where the server keeps it."""
    return _ABSOLUTE_PATH.sub(_last_parts, message)


def _last_parts(match: re.Match[str]) -> str:
    return "/".join(PurePosixPath(match.group()).parts[1:][-2:])  # parts[0] is the root


def _listed(error: BaseException) -> grpc.StatusCode | None:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return None
