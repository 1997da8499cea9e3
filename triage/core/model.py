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
from triage.core.explain import TermExplainer, Terms
from triage.core.forward import ForwardPass
from triage.core.pipeline import CLASSIFIER

DEFAULT_TOP_TERMS = 5


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


class TriageModel:
    """A verified pipeline and its card; ``predict`` scores many texts in one model call."""

    def __init__(self, pipeline: Pipeline, card: ModelCard) -> None:
        self.pipeline = pipeline
        self.card = card
        self.labels: tuple[str, ...] = tuple(card.labels)
        self.version = card.version
        self.review_threshold = card.review_threshold
        self._explainer = TermExplainer(pipeline)
        self._forward = ForwardPass.of(pipeline)  # None: a shape scikit-learn runs as usual

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in ``labels`` order."""
        return self._features_and_proba(texts)[1]

    def predict(self, texts: Sequence[str], top_k: int = DEFAULT_TOP_TERMS) -> list[Prediction]:
        """Score ``texts`` in one vectorised call; ``top_k`` explanation terms each (0: none)."""
        if len(texts) == 0:
            return []
        features, proba = self._features_and_proba(texts)
        best = proba.argmax(axis=1)
        terms = self._explainer.top_terms(features, best, top_k)
        order = np.argsort(-proba, axis=1, kind="stable")
        return [
            Prediction(
                label=self.labels[best[i]],
                confidence=float(proba[i, best[i]]),
                scores=tuple((self.labels[j], float(proba[i, j])) for j in order[i]),
                needs_review=bool(proba[i, best[i]] < self.review_threshold),
                top_terms=terms[i],
                model_version=self.version,
            )
            for i in range(len(texts))
        ]

    def _features_and_proba(self, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
        with _fitted_model_context():
            if self._forward is not None:
                features = self._forward.features(texts)
                return features, self._forward.predict_proba(features)
            features = self.pipeline[:-1].transform(list(texts))
            proba = self.pipeline.named_steps[CLASSIFIER].predict_proba(features)
            return features, np.asarray(proba)


def load_model(path: Path | str, mmap: bool = False) -> TriageModel:
    """Load the model at ``path`` (a version directory or ``models/current``), verified first.
    ``mmap``: map its arrays from the file, shared between processes (read-only)."""
    pipeline, card = load_artifact(Path(path), mmap=mmap)
    return TriageModel(pipeline, card)


def load_model_bytes(card_document: dict[str, Any], model_bytes: bytes) -> TriageModel:
    """Load a model shipped as bytes with its card, verified exactly as :func:`load_model`."""
    pipeline, card = load_artifact_bytes(card_document, model_bytes)
    return TriageModel(pipeline, card)
