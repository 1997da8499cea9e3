"""Name the words that pushed a linear model towards its predicted label (value x weight)."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.pipeline import FeatureUnion, Pipeline

from triage.core.identity import is_placeholder_term
from triage.core.pipeline import CLASSIFIER, FEATURES, READABLE_FEATURES

Terms = tuple[tuple[str, float], ...]


class TermExplainer:
    """Precomputed class weights and readable feature names of one fitted pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        names, readable = readable_feature_names(pipeline.named_steps[FEATURES])
        weights = class_weights(pipeline.named_steps[CLASSIFIER])
        if weights.shape[1] != len(names):
            raise ValueError(
                f"classifier has {weights.shape[1]} weights but features give {len(names)} names"
            )
        # Character n-grams and stop-word-only terms ("our", "on the") still vote, but are
        # never shown as reasons: they tell a reader nothing.
        weights[:, ~readable] = 0.0
        self._names = names
        self._weights = weights.astype(np.float32)

    def top_terms(self, features: Any, predicted: np.ndarray, k: int) -> list[Terms]:
        """For each row of ``features``, up to ``k`` terms with the largest positive push
        towards that row's class index in ``predicted``, strongest first."""
        # A CSR matrix or array is used as it is (a conversion is a copy of its index arrays).
        x = (
            features
            if sp.issparse(features) and features.format == "csr"
            else sp.csr_matrix(features)
        )
        if k <= 0:
            return [() for _ in range(x.shape[0])]
        per_row = np.diff(x.indptr)
        contribution = x.data * self._weights[np.repeat(predicted, per_row), x.indices]
        out: list[Terms] = []
        for start, end in zip(x.indptr[:-1], x.indptr[1:], strict=True):
            c = contribution[start:end]
            top = np.argpartition(-c, k)[:k] if c.size > k else np.arange(c.size)
            top = top[np.argsort(-c[top], kind="stable")]
            cols = x.indices[start:end]
            out.append(
                tuple((str(self._names[cols[i]]), round(float(c[i]), 6)) for i in top if c[i] > 0)
            )
        return out


def class_weights(classifier: Any) -> np.ndarray:
    """A dense (n_classes, n_features) weight matrix for a linear or naive Bayes classifier."""
    if isinstance(classifier, CalibratedClassifierCV):
        inner = [class_weights(c.estimator) for c in classifier.calibrated_classifiers_]
        return np.mean(inner, axis=0)
    if hasattr(classifier, "coef_"):
        coef = np.asarray(classifier.coef_, dtype=np.float64)
        # Binary models keep one row that pushes towards classes_[1]; give each class its own.
        return np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef.copy()
    if hasattr(classifier, "feature_log_prob_"):
        logp = np.asarray(classifier.feature_log_prob_, dtype=np.float64)
        return logp - logp.mean(axis=0, keepdims=True)
    raise TypeError(f"cannot explain a {type(classifier).__name__}: it has no linear weights")


# Per fitted features step: the explainer, the evidence check and the evidence spans of one
# model all need these names (about 0.08 s for the default model's 150,000-odd columns), so a
# model load works them out once. Bound to the step's fitted vocabularies: a refit step gets
# new ones, and so new names.
_NAMES: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], tuple[np.ndarray, np.ndarray]]] = (
    weakref.WeakKeyDictionary()
)


def readable_feature_names(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """All feature names in column order, and a mask of those readable as words (in the word
    part of the features, and not stop words only). Read-only arrays, shared by every caller."""
    parts = features.transformer_list if isinstance(features, FeatureUnion) else []
    fitted = tuple(id(getattr(t, "vocabulary_", None)) for _, t in parts or [("", features)])
    try:
        known = _NAMES.get(features)
    except TypeError:  # not weakly referable: nothing to remember it by
        return _readable_feature_names(features)
    if known is not None and known[0] == fitted:
        return known[1]
    names, readable = _readable_feature_names(features)
    names.setflags(write=False)
    readable.setflags(write=False)
    _NAMES[features] = (fitted, (names, readable))
    return names, readable


def _readable_feature_names(features: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(features, FeatureUnion):
        names, readable = [], []
        for part, transformer in features.transformer_list:
            part_names = transformer.get_feature_names_out()
            names.append(part_names)
            readable.append(
                _meaningful(part_names)
                if part == READABLE_FEATURES
                else np.zeros(len(part_names), dtype=bool)
            )
        return np.concatenate(names), np.concatenate(readable)
    names = features.get_feature_names_out()
    return names, _meaningful(names)


def _meaningful(names: np.ndarray) -> np.ndarray:
    return np.fromiter(
        (
            not all(word in ENGLISH_STOP_WORDS for word in name.split())
            and not is_placeholder_term(name)
            for name in names
        ),
        dtype=bool,
        count=len(names),
    )
