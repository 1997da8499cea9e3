"""The promotion gate: a new model replaces the current one only if it keeps the fairness bounds
and is not worse on test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from triage.core.artifacts import promote, read_card, resolve_current
from triage.core.errors import ModelLoadError
from triage.core.model import load_model
from triage.training.corpus import LabelledData
from triage.training.fairness import FairnessReport
from triage.training.metrics import evaluate

DEFAULT_TOLERANCE = 0.01


@dataclass(frozen=True)
class GateDecision:
    """Whether a new version was promoted, and why (the sentence a data scientist reads)."""

    promoted: bool
    reason: str


def gate_and_promote(
    models_dir: Path,
    version: str,
    new_macro_f1: float,
    test: LabelledData,
    tolerance: float = DEFAULT_TOLERANCE,
    fairness: FairnessReport | None = None,
) -> GateDecision:
    """Promote ``version`` unless its ``fairness`` report breaks its bounds (even when no model
    is current: the bounds are absolute), or the current model scores better on the same test
    file by more than ``tolerance`` macro-F1. Both models are scored on ``test`` in this run, so
    the comparison is like for like even when the test file changed since the current one was
    made."""
    if fairness is not None and not fairness.passed:
        return _unfair(version, fairness)
    current_dir = resolve_current(models_dir)
    if current_dir is None:
        promote(models_dir, version, reason="first model")
        return GateDecision(True, f"promoted {version}: no model was current")
    try:
        current = load_model(current_dir)
    except ModelLoadError as err:
        promote(models_dir, version, reason="current model unloadable")
        return GateDecision(True, f"promoted {version}: the current model cannot load ({err})")
    new_labels = read_card(models_dir / version).labels
    if set(current.labels) != set(new_labels):
        return GateDecision(
            False,
            f"kept {current.version} current: {version} has labels {list(new_labels)}, the current "
            f"model {list(current.labels)}; promote it explicitly with `triage promote {version}`",
        )
    old = evaluate(test.labels, current.predict_proba(test.texts), current.labels).macro_f1
    if new_macro_f1 + tolerance < old:
        return GateDecision(
            False,
            f"kept {current.version} current: {version} test macro-F1 {new_macro_f1:.4f} is worse "
            f"than {old:.4f} by more than the tolerance {tolerance}",
        )
    promote(
        models_dir,
        version,
        reason=f"test macro-F1 {new_macro_f1:.4f} vs {old:.4f} ({current.version})",
    )
    return GateDecision(
        True,
        f"promoted {version}: test macro-F1 {new_macro_f1:.4f} vs {old:.4f} for {current.version}",
    )


def await_shadow_evidence(
    models_dir: Path, version: str, minimum: int, fairness: FairnessReport | None = None
) -> GateDecision:
    """The decision for a version just trained under ``--require-shadow``: never promoted, as it
    cannot have answered live traffic yet; the reason says how to gather the evidence and then
    promote it (or why it should not be, if it breaks the fairness bounds)."""
    if fairness is not None and not fairness.passed:
        return _unfair(version, fairness)
    return GateDecision(
        False,
        f"not promoted: {version} is kept until it has {minimum} shadow decisions. Next: serve it "
        f"in shadow beside the current model (`triage serve --shadow {models_dir / version}`), "
        f"then `triage promote {version} --require-shadow {minimum} --models {models_dir}`",
    )


def _unfair(version: str, fairness: FairnessReport) -> GateDecision:
    return GateDecision(
        False,
        f"not promoted: {version} breaks the fairness bounds: " + "; ".join(fairness.problems()),
    )
