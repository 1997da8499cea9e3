"""The served model: a fitted pipeline plus its card, predicting labelled, explained results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.pipeline import Pipeline

from triage.core.artifacts import ModelCard, load_artifact, load_artifact_bytes
from triage.core.errors import ModelLoadError
from triage.core.evidence import EvidenceCheck
from triage.core.explain import TermExplainer, Terms
from triage.core.forward import ForwardPass
from triage.core.pipeline import CLASSIFIER, FEATURES

DEFAULT_TOP_TERMS = 5
# Why a prediction needs review, as Prediction.review_reasons names it (stable values).
NO_EVIDENCE = "no_evidence"  # nothing the model can read: the scores are the training base rates
BELOW_THRESHOLD = "below_threshold"  # the confidence is under the card's review threshold


def _fitted_model_context() -> Any:
    # The pipeline's parameters were validated when it was fitted, and its features are tf-idf
    # weights of text, finite by construction: re-checking both on every call costs about a
    # tenth of a single report's latency.
    return config_context(assume_finite=True, skip_parameter_validation=True)


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one report."""

    label: str
    confidence: float
    scores: tuple[tuple[str, float], ...]  # every label with its probability, highest first
    needs_review: bool
    top_terms: Terms  # (term, contribution) that pushed towards ``label``, strongest first
    model_version: str
    # Why ``needs_review`` is set (NO_EVIDENCE, BELOW_THRESHOLD, in that order); empty if not.
    review_reasons: tuple[str, ...] = ()


class TriageModel:
    """A verified pipeline and its card; ``predict`` scores many texts in one model call."""

    def __init__(self, pipeline: Pipeline, card: ModelCard) -> None:
        self.pipeline = pipeline
        self.card = card
        self.labels: tuple[str, ...] = tuple(card.labels)
        self.version = card.version
        self.review_threshold = card.review_threshold
        self._explainer = TermExplainer(pipeline)
        self._evidence = EvidenceCheck(pipeline.named_steps[FEATURES])
        self._base_rates = _base_rates(card)
        self._forward = ForwardPass.of(pipeline)  # None: a shape scikit-learn runs as usual

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in ``labels`` order: those ``predict``
        serves (a text with no evidence gets the training base rates)."""
        return self._scored(texts)[1]

    def predict(self, texts: Sequence[str], top_k: int = DEFAULT_TOP_TERMS) -> list[Prediction]:
        """Score ``texts`` in one vectorised call; ``top_k`` explanation terms each (0: none)."""
        if len(texts) == 0:
            return []
        features, proba, evidence = self._scored(texts)
        best = proba.argmax(axis=1)
        terms = self._explainer.top_terms(features, best, top_k)
        order = np.argsort(-proba, axis=1, kind="stable")
        predictions = []
        for i in range(len(texts)):
            below = bool(proba[i, best[i]] < self.review_threshold)
            reasons = _review_reasons(bool(evidence[i]), below)
            predictions.append(
                Prediction(
                    label=self.labels[best[i]],
                    confidence=float(proba[i, best[i]]),
                    scores=tuple((self.labels[j], float(proba[i, j])) for j in order[i]),
                    needs_review=bool(reasons),
                    # Without evidence the label is the base rates' and no term chose it.
                    top_terms=terms[i] if evidence[i] else (),
                    model_version=self.version,
                    review_reasons=reasons,
                )
            )
        return predictions

    def _scored(self, texts: Sequence[str]) -> tuple[Any, np.ndarray, np.ndarray]:
        # With no feature it can read, a classifier's answer is its intercepts, which a
        # calibrator fitted on real reports can map to near certainty (a bomb threat in Chinese
        # came out "general 1.000"). A calibrated classifier with no evidence should answer the
        # prior: each label's share of the training data.
        features, proba = self._features_and_proba(texts)
        evidence = self._evidence.rows_with_evidence(features)
        return features, np.where(evidence[:, np.newaxis], proba, self._base_rates), evidence

    def _features_and_proba(self, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
        with _fitted_model_context():
            if self._forward is not None:
                features = self._forward.features(texts)
                return features, self._forward.predict_proba(features)
            features = self.pipeline[:-1].transform(list(texts))
            proba = self.pipeline.named_steps[CLASSIFIER].predict_proba(features)
            return features, np.asarray(proba)


def _base_rates(card: ModelCard) -> np.ndarray:
    """Each label's share of the training data, in ``card.labels`` order (uniform if unknown)."""
    counts = card.training.data.train.labels
    rates = np.array([counts.get(label, 0) for label in card.labels], dtype=np.float64)
    total = rates.sum()
    return rates / total if total > 0 else np.full(len(rates), 1 / len(rates))


def _review_reasons(has_evidence: bool, below_threshold: bool) -> tuple[str, ...]:
    reasons = [] if has_evidence else [NO_EVIDENCE]
    if below_threshold:
        reasons.append(BELOW_THRESHOLD)
    return tuple(reasons)


def load_model(path: Path | str) -> TriageModel:
    """Load the model at ``path`` (a version directory or ``models/current``), verified first
    and loaded without running code (see :mod:`triage.core.artifacts`)."""
    pipeline, card = load_artifact(Path(path))
    return _served(pipeline, card)


def load_model_bytes(card: ModelCard, model_bytes: bytes) -> TriageModel:
    """Load a model shipped as bytes with its card, verified exactly as :func:`load_model`."""
    pipeline, card = load_artifact_bytes(card, model_bytes)
    return _served(pipeline, card)


def _served(pipeline: Pipeline, card: ModelCard) -> TriageModel:
    try:
        return TriageModel(pipeline, card)
    except Exception as err:  # trusted types holding state no triage training wrote
        raise ModelLoadError(
            f"model {card.version[:80]} cannot serve: its pipeline is not one triage trained "
            f"({type(err).__name__})"
        ) from None
