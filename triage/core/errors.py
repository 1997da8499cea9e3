"""Domain errors: what can go wrong, in the project's own terms (no transport imports)."""

from __future__ import annotations

from pathlib import Path


class TriageError(Exception):
    """Base class of every error the project raises on purpose."""


class InvalidReport(TriageError):
    """A report cannot be scored as sent (empty text, over a limit, ...)."""


class DataFileError(TriageError):
    """A labelled-data or archive file is unreadable or holds a bad row."""

    def __init__(self, path: Path | str, message: str, row: int | None = None) -> None:
        self.path = str(path)
        self.row = row
        self.reason = message
        where = f"{self.path}: row {row}" if row is not None else self.path
        super().__init__(f"{where}: {message}")


class ModelLoadError(TriageError):
    """A model artifact is missing, tampered with or incompatible, so it was not loaded."""


class InvalidRecord(TriageError):
    """A written record (model card, evaluation) has a missing, mistyped or unknown field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"field {field!r} {problem}")


class PromotionRefused(TriageError):
    """A trained model did not clear the promotion gate."""


class ModelUnavailable(TriageError):
    """No model is loaded to answer with."""


class DeadlineExceeded(TriageError):
    """The caller's deadline passed before the work started; it was skipped."""


class Overloaded(TriageError):
    """The service is at its limit of work in flight; the caller should back off and retry."""
