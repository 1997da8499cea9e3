"""The one scoring loop: reports in, predictions (or per-report errors) out, chunk by chunk."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import TypeVar

from triage.core.errors import InvalidReport, TriageError
from triage.core.model import DEFAULT_TOP_TERMS, Prediction, TriageModel

Check = Callable[["Report"], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Report:
    """One report to score: its text, the caller's id, how many reasons to return.

    ``problem`` is set when the report could not even be read (undecodable bytes, a missing
    column); such a report is never scored, only reported.
    """

    text: str
    report_id: str = ""
    top_terms: int = DEFAULT_TOP_TERMS
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One report's result: a prediction, or the error that refused it; ``decision_id`` names
    the prediction in the decision record (empty when nothing records decisions)."""

    report_id: str
    prediction: Prediction | None = None
    error: TriageError | None = None
    decision_id: str = ""


def accept_all(report: Report) -> None:
    """A check for reports that were validated before they got here."""


def require_text(report: Report) -> None:
    """The minimum every scorer enforces: readable, non-blank text."""
    if report.problem is not None:
        raise InvalidReport(report.problem)
    if not report.text.strip():
        raise InvalidReport("text is empty or only whitespace; send the report's text")


def score_reports(
    model: TriageModel, reports: Sequence[Report], check: Check = require_text
) -> list[Outcome]:
    """Score every report that passes ``check`` in ONE model call; the others get their error.
    Outcomes follow the order of ``reports``."""
    return score_valid(reports, check, lambda valid: _predict(model, valid))


def score_valid(
    reports: Sequence[Report],
    check: Check,
    score: Callable[[list[Report]], list[Outcome]],
) -> list[Outcome]:
    """Refuse the reports that fail ``check``; hand the rest to ``score`` in one call (unless
    none is left); return one outcome per report, in order."""
    outcomes: list[Outcome] = []
    valid: list[int] = []
    for i, report in enumerate(reports):
        try:
            check(report)
        except InvalidReport as err:
            outcomes.append(Outcome(report.report_id, error=err))
        else:
            outcomes.append(Outcome(report.report_id))
            valid.append(i)
    if valid:
        for i, outcome in zip(valid, score([reports[i] for i in valid]), strict=True):
            outcomes[i] = outcome
    return outcomes


def _predict(model: TriageModel, reports: list[Report]) -> list[Outcome]:
    most = max(r.top_terms for r in reports)
    predictions = model.predict([r.text for r in reports], top_k=most)
    return [
        Outcome(
            r.report_id,
            prediction=p
            if r.top_terms == most
            else replace(p, top_terms=p.top_terms[: r.top_terms]),
        )
        for r, p in zip(reports, predictions, strict=True)
    ]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items; memory is bounded by ``size``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
