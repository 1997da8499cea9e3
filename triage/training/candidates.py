"""The candidate model pipelines and their hyper-parameter grids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from triage.core.features import CachedTfidfVectorizer
from triage.core.normalise import TextNormaliser
from triage.core.pipeline import CLASSIFIER, FEATURES, NORMALISE, READABLE_FEATURES

DEFAULT_CANDIDATE = "word_char_svm"
CALIBRATION_FOLDS = 3


@dataclass(frozen=True)
class Candidate:
    """A named way to build the model, with the grid searched for it by cross-validation."""

    name: str
    summary: str
    build: Callable[[int], Pipeline]
    grid: dict[str, list[Any]] = field(default_factory=dict)


def _words() -> CachedTfidfVectorizer:
    return CachedTfidfVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.9,
        sublinear_tf=True,
        strip_accents="unicode",
        dtype=np.float32,
    )


def _chars() -> CachedTfidfVectorizer:
    # char_wb n-grams survive typos, odd spellings and run-together words in callers' reports.
    return CachedTfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        min_df=2,
        max_df=0.9,
        sublinear_tf=True,
        strip_accents="unicode",
        max_features=150_000,
        dtype=np.float32,
    )


def _calibrated(estimator: Any, method: str = "sigmoid") -> CalibratedClassifierCV:
    # ensemble=False: one classifier fitted on all the data (one set of weights to explain,
    # one model call to predict); the calibrator learns from its cross-validated scores.
    return CalibratedClassifierCV(estimator, method=method, cv=CALIBRATION_FOLDS, ensemble=False)


def _word_lr(seed: int) -> Pipeline:
    return Pipeline(
        [
            (NORMALISE, TextNormaliser()),
            (FEATURES, _words()),
            (CLASSIFIER, LogisticRegression(C=10.0, max_iter=3000, random_state=seed)),
        ]
    )


def _word_char_svm(seed: int, identity_terms: bool = True) -> Pipeline:
    features = FeatureUnion([(READABLE_FEATURES, _words()), ("char", _chars())])
    svm = LinearSVC(C=0.5, random_state=seed, max_iter=5000)
    return Pipeline(
        [
            (NORMALISE, TextNormaliser(identity_terms=identity_terms)),
            (FEATURES, features),
            (CLASSIFIER, _calibrated(svm)),
        ]
    )


def _word_char_svm_plain(seed: int) -> Pipeline:
    return _word_char_svm(seed, identity_terms=False)


def _word_svm(seed: int) -> Pipeline:
    svm = LinearSVC(C=0.5, random_state=seed, max_iter=5000)
    return Pipeline(
        [(NORMALISE, TextNormaliser()), (FEATURES, _words()), (CLASSIFIER, _calibrated(svm))]
    )


def _complement_nb(seed: int) -> Pipeline:
    return Pipeline(
        [
            (NORMALISE, TextNormaliser()),
            (FEATURES, _words()),
            (CLASSIFIER, _calibrated(ComplementNB(alpha=0.3))),
        ]
    )


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate(
            "word_lr",
            "word 1-2-gram TF-IDF + multinomial logistic regression",
            _word_lr,
            {f"{CLASSIFIER}__C": [3.0, 10.0, 30.0]},
        ),
        Candidate(
            "word_char_svm",
            "word 1-2-gram + char_wb 2-5-gram TF-IDF + linear SVM, sigmoid-calibrated; names, "
            "faiths, places of worship, nationalities and languages read as placeholders",
            _word_char_svm,
            # Sigmoid calibration only: isotonic's steps turn score differences of a few
            # hundredths into probability jumps of 0.1 (and, normalised across labels, can
            # even reverse their order), which makes near-identical reports score apart.
            {f"{CLASSIFIER}__estimator__C": [0.1, 0.3, 1.0], f"{CLASSIFIER}__method": ["sigmoid"]},
        ),
        Candidate(
            "word_char_svm_plain",
            "word_char_svm reading identity terms as written (no placeholders): to compare",
            _word_char_svm_plain,
            {
                f"{CLASSIFIER}__estimator__C": [0.1, 0.3, 1.0],
                f"{CLASSIFIER}__method": ["sigmoid", "isotonic"],
            },
        ),
        Candidate(
            "word_svm",
            "word 1-2-gram TF-IDF + linear SVM, calibrated",
            _word_svm,
            {
                f"{CLASSIFIER}__estimator__C": [0.1, 0.3, 1.0],
                f"{CLASSIFIER}__method": ["sigmoid", "isotonic"],
            },
        ),
        Candidate(
            "complement_nb",
            "word 1-2-gram TF-IDF + complement naive Bayes, sigmoid-calibrated",
            _complement_nb,
            {f"{CLASSIFIER}__estimator__alpha": [0.1, 0.3, 1.0]},
        ),
    )
}


def get_candidate(name: str) -> Candidate:
    """Return the candidate called ``name`` or raise ``KeyError`` listing the known ones."""
    try:
        return CANDIDATES[name]
    except KeyError:
        raise KeyError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}") from None
