"""Fit a candidate pipeline by cross-validated search, then measure it on CV and test data."""

from __future__ import annotations

import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
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
    ScopeSettings,
    TrainingData,
    TrainingMetrics,
    TrainingRecord,
)
from triage.core.errors import DataFileError
from triage.core.evaluation import Evaluation
from triage.core.json_fields import Scalar
from triage.core.pipeline import FEATURES, NORMALISE
from triage.core.scope import MODEL_LANGUAGE, KnownShare, min_known_share
from triage.training.candidates import DEFAULT_CANDIDATE, get_candidate
from triage.training.corpus import LabelledData, TrainingSet
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


def check_trainable(data: LabelledData | TrainingSet, folds: int) -> list[str]:
    """The sorted label set of ``data``; raise if a label is too rare to cross-validate."""
    training = data if isinstance(data, TrainingSet) else TrainingSet.of(data)
    counts = Counter(training.labels)
    if len(counts) < 2:
        raise DataFileError(training.name, f"needs at least two labels, found {sorted(counts)}")
    for label, n in sorted(counts.items()):
        if n < folds:
            raise DataFileError(
                training.name,
                f"label {label!r} has only {n} example(s) ({_rows_of(training, label)}); "
                f"{folds}-fold cross-validation needs at least {folds}",
            )
    return sorted(counts)


def _rows_of(training: TrainingSet, label: str) -> str:
    """Where ``label``'s rows are: "rows 3, 9", or per file when there are several files."""
    per_file = [
        (part.path, [str(r.row) for r in part.rows if r.label == label]) for part in training.kept
    ]
    if len(per_file) == 1:
        return f"rows {', '.join(per_file[0][1])}"
    return "rows " + "; ".join(f"{path}: {', '.join(rows)}" for path, rows in per_file if rows)


def train(
    data: LabelledData | TrainingSet,
    test: LabelledData | None,
    config: TrainConfig = TrainConfig(),
) -> TrainResult:
    """Search the candidate's grid by stratified k-fold macro-F1, fit it on all of ``data``
    (one file, or several combined by ``triage.training.datacheck.combine_training_files``),
    choose the review threshold from out-of-fold probabilities, and score ``test``."""
    started = time.perf_counter()
    training = data if isinstance(data, TrainingSet) else TrainingSet.of(data)
    labels = check_trainable(training, config.folds)
    candidate = get_candidate(config.candidate)
    folds = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    texts, y = training.texts, np.asarray(training.labels)

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
        data=TrainingData(
            train=describe_combined(training),
            test=describe(test) if test else None,
            files=tuple(describe(f) for f in training.files),
            set_aside=dict(training.set_aside),
        ),
        metrics=TrainingMetrics(cv=cv_eval, test=test_eval),
        libraries=library_versions(),
        training_seconds=round(time.perf_counter() - started, 2),
        scope=_scope(pipeline, texts),
    )
    return TrainResult(pipeline=pipeline, card=card)


def _scope(pipeline: Pipeline, texts: Sequence[str]) -> ScopeSettings:
    """The scope the fitted ``pipeline`` reads: the corpus language and the smallest known share
    (``triage.core.scope``) it accepts, from its own training texts."""
    docs = pipeline.named_steps[NORMALISE].transform(list(texts))
    features = pipeline.named_steps[FEATURES].transform(docs)
    shares = KnownShare(pipeline.named_steps[FEATURES]).shares(docs, features)
    return ScopeSettings(language=MODEL_LANGUAGE, min_known_share=min_known_share(shares))


def describe(data: LabelledData) -> DataProvenance:
    """Provenance of a data file for the model card."""
    return DataProvenance(
        path=str(data.path),
        sha256=data.sha256,
        rows=len(data.rows),
        labels=dict(sorted(Counter(data.labels).items())),
        genres=dict(sorted(Counter(r.genre or "(none)" for r in data.rows).items())),
    )


def describe_combined(training: TrainingSet) -> DataProvenance:
    """Provenance of the rows trained on: one file's own when nothing was left out of it."""
    if len(training.files) == 1 and training.kept == training.files:
        return describe(training.files[0])
    rows = training.rows
    return DataProvenance(
        path=training.name,
        sha256=training.sha256,
        rows=len(rows),
        labels=dict(sorted(Counter(r.label for r in rows).items())),
        genres=dict(sorted(Counter(r.genre or "(none)" for r in rows).items())),
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
