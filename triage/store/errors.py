"""What can go wrong with the decision record, in the project's terms (the gRPC layer maps each
to a status code; the CLI prints the message and exits 1)."""

from __future__ import annotations

from triage.core.errors import TriageError


class StoreError(TriageError):
    """The decision record cannot be opened, is at the wrong schema, or refused a read or write.
    The message names the store without its password."""


class UnstorableValue(StoreError):
    """The store is up but cannot take a value of this row (a database data error): retrying
    cannot help, so it is the sender's problem, not an outage."""


class RecordUnavailable(TriageError):
    """A decision cannot be put on record (the local spool is full while the store is down):
    the call is refused rather than answered without a record."""


class UnknownDecision(TriageError):
    """No recorded decision has the decision id (or report id) asked about."""


class InvalidFeedback(TriageError):
    """Feedback that cannot be recorded as sent: a label the model does not know, an over-long
    note, neither a decision id nor a report id."""


class KeyProblem(TriageError):
    """An encryption key is missing, malformed, or not the one a stored text was sealed with."""


class NoRecord(TriageError):
    """The server keeps no decision record (recording switched off), so there is nothing to
    look up or correct."""
