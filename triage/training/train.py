"""Fit a candidate pipeline by cross-validated search, then measure it on CV and test data."""

from __future__ import annotations

import platform
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import scipy
import sklearn
import skops
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

import triage
from triage.core.card import (
    DataProvenance,
    GridPoint,
    ReviewThreshold,
    TrainingData,
    TrainingMetrics,
    TrainingRecord,
)
from triage.core.errors import DataFileError
from triage.core.evaluation import Evaluation
from triage.core.json_fields import Scalar
from triage.training.candidates import DEFAULT_CANDIDATE, get_candidate
from triage.training.corpus import LabelledData
from triage.training.metrics import choose_review_threshold, evaluate


@dataclass(frozen=True)
class TrainConfig:
    """How to train: which candidate, how to cross-validate, what precision to buy."""

    candidate: str = DEFAULT_CANDIDATE
    folds: int = 5
    seed: int = 0
    target_precision: float = 0.99
    n_jobs: int = -1
    search: bool = True  # False: the candidate's defaults, no grid search


@dataclass(frozen=True)
class TrainResult:
    """A fitted pipeline and the training record its model card will hold."""

    pipeline: Pipeline
    card: TrainingRecord

    @property
    def cv(self) -> Evaluation:
        return self.card.metrics.cv

    @property
    def test(self) -> Evaluation | None:
        return self.card.metrics.test


def check_trainable(data: LabelledData, folds: int) -> list[str]:
    """The sorted label set of ``data``; raise if a label is too rare to cross-validate."""
    counts = Counter(data.labels)
    if len(counts) < 2:
        raise DataFileError(data.path, f"needs at least two labels, found {sorted(counts)}")
    for label, n in sorted(counts.items()):
        if n < folds:
            rows = [str(r.row) for r in data.rows if r.label == label]
            raise DataFileError(
                data.path,
                f"label {label!r} has only {n} example(s) (rows {', '.join(rows)}); "
                f"{folds}-fold cross-validation needs at least {folds}",
            )
    return sorted(counts)


def train(
    data: LabelledData, test: LabelledData | None, config: TrainConfig = TrainConfig()
) -> TrainResult:
    """Search the candidate's grid by stratified k-fold macro-F1, fit it on all of ``data``,
    choose the review threshold from out-of-fold probabilities, and score ``test``."""
    started = time.perf_counter()
    labels = check_trainable(data, config.folds)
    candidate = get_candidate(config.candidate)
    folds = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    texts, y = data.texts, np.asarray(data.labels)

    with tempfile.TemporaryDirectory(prefix="triage-cache-") as cache:
        # Grid points that differ only in the classifier reuse each fold's fitted features.
        pipeline = candidate.build(config.seed).set_params(memory=joblib.Memory(cache, verbose=0))
        search_results: list[GridPoint] = []
        if config.search and candidate.grid:
            search = GridSearchCV(
                pipeline,
                candidate.grid,
                scoring="f1_macro",
                cv=folds,
                n_jobs=config.n_jobs,
                refit=False,
            )
            search.fit(texts, y)
            params: dict[str, Any] = dict(search.best_params_)
            search_results = [
                GridPoint(params=_jsonable_params(p), macro_f1=float(m), std=float(s))
                for p, m, s in zip(
                    search.cv_results_["params"],
                    search.cv_results_["mean_test_score"],
                    search.cv_results_["std_test_score"],
                    strict=True,
                )
            ]
            pipeline.set_params(**params)
        else:
            params = {}
        oof = cross_val_predict(
            clone(pipeline), texts, y, cv=folds, method="predict_proba", n_jobs=config.n_jobs
        )
        pipeline.fit(texts, y)
    pipeline.set_params(memory=None)

    correct = np.asarray(labels)[oof.argmax(axis=1)] == y
    threshold = choose_review_threshold(oof.max(axis=1), correct, config.target_precision)
    cv_eval = evaluate(y, oof, labels, threshold)
    test_eval = None
    if test is not None:
        test_eval = evaluate(test.labels, pipeline.predict_proba(test.texts), labels, threshold)
    assert cv_eval.review is not None  # evaluated with the threshold

    card = TrainingRecord(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        labels=tuple(labels),
        candidate=candidate.name,
        candidate_summary=candidate.summary,
        params=_jsonable_params(params),
        seed=config.seed,
        cv_folds=config.folds,
        search=tuple(search_results),
        review=ReviewThreshold(
            threshold=threshold,
            target_precision=config.target_precision,
            cv_precision=cv_eval.review.accepted_precision,
            cv_review_rate=cv_eval.review.rate,
        ),
        data=TrainingData(train=describe(data), test=describe(test) if test else None),
        metrics=TrainingMetrics(cv=cv_eval, test=test_eval),
        libraries=library_versions(),
        training_seconds=round(time.perf_counter() - started, 2),
    )
    return TrainResult(pipeline=pipeline, card=card)


def describe(data: LabelledData) -> DataProvenance:
    """Provenance of a data file for the model card."""
    return DataProvenance(
        path=str(data.path),
        sha256=data.sha256,
        rows=len(data.rows),
        labels=dict(sorted(Counter(data.labels).items())),
        genres=dict(sorted(Counter(r.genre or "(none)" for r in data.rows).items())),
    )


def library_versions() -> dict[str, str]:
    """Versions that decide whether a saved pipeline loads and behaves as it did in training."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
        "skops": skops.__version__,
        "triage": triage.__version__,
    }


def _jsonable_params(params: dict[str, Any]) -> dict[str, Scalar]:
    # A parameter that is not a JSON scalar (a tuple, an estimator) goes on the card as its repr.
    return {
        name: value if isinstance(value, str | int | float | bool | None) else repr(value)
        for name, value in params.items()
    }
