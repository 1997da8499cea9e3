"""A fitted pipeline's forward pass without scikit-learn's per-call checks, same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn import get_config
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import LabelEncoder, normalize
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from triage.core.features import CachedTfidfVectorizer, _align_api_if_sparse


class ForwardPass:
    """The features and calibrated probabilities of a fitted ``Pipeline(normalise -> features ->
    CalibratedClassifierCV)``, computed from the pipeline's own fitted parts.

    Scikit-learn re-validates its input at every step of every call (array checks, dataframe
    detection, label encoding): about 4 ms per call here, three times the arithmetic of scoring
    one report. The model is fitted and verified once, so here each step does only its
    arithmetic, in the same order on the same arrays; tests compare the features and
    probabilities with the pipeline's own, exactly. :meth:`of` returns None for a pipeline of any
    other shape, which then runs through scikit-learn as usual.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        (_, self._normalise), (_, features), (_, classifier) = pipeline.steps
        self._vectorizers: list[TfidfVectorizer] = (
            [t for _, t in features.transformer_list]
            if isinstance(features, FeatureUnion)
            else [features]
        )
        (calibrated,) = classifier.calibrated_classifiers_
        self._estimator = calibrated.estimator
        self._calibrators = calibrated.calibrators
        self._n_classes = len(calibrated.classes)
        # What scikit-learn's calibrated classifier recomputes on every call.
        self._columns = LabelEncoder().fit(calibrated.classes).transform(self._estimator.classes_)

    @classmethod
    def of(cls, pipeline: Pipeline) -> ForwardPass | None:
        """A forward pass for ``pipeline``, or None if its shape is not one this class knows."""
        if len(pipeline.steps) != 3:
            return None
        features, classifier = pipeline.steps[1][1], pipeline.steps[2][1]
        if isinstance(features, FeatureUnion):
            parts = [t for _, t in features.transformer_list]
            if features.transformer_weights or not parts:
                return None
        else:
            parts = [features]
        if not all(isinstance(t, TfidfVectorizer) for t in parts):
            return None
        if not (
            isinstance(classifier, CalibratedClassifierCV)
            and len(classifier.calibrated_classifiers_) == 1
            and classifier.method in ("sigmoid", "isotonic")
            and len(classifier.classes_) > 2
            # decision_function is X @ coef_.T + intercept_ (the shape the tests cover)
            and type(classifier.calibrated_classifiers_[0].estimator) is LinearSVC
        ):
            return None
        return cls(pipeline)

    def features(self, texts: Sequence[str]) -> Any:
        """The pipeline's feature matrix for ``texts`` (CSR, one row per text)."""
        return self.features_of(self._normalise.transform(list(texts)))

    def features_of(self, docs: list[str]) -> Any:
        """The feature matrix for documents the pipeline's normaliser already read."""
        blocks = [_tfidf(v, docs) for v in self._vectorizers]
        # The type scikit-learn's own transform would hand back (its sparse-interface setting).
        if len(blocks) == 1:
            return _align_api_if_sparse(blocks[0])
        interface = get_config().get("sparse_interface", "spmatrix")
        return _side_by_side(blocks, sp.csr_array if interface == "sparray" else sp.csr_matrix)

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803 - scikit-learn's name
        """Calibrated probabilities, one row per row of ``X``, columns in class order."""
        estimator = self._estimator
        scores = safe_sparse_dot(X, estimator.coef_.T, dense_output=True) + estimator.intercept_
        proba = np.zeros((X.shape[0], self._n_classes))
        for column, this_score, calibrator in zip(
            self._columns, scores.T, self._calibrators, strict=True
        ):
            if type(calibrator) is _SigmoidCalibration:  # its predict, without input checks
                proba[:, column] = expit(-(calibrator.a_ * this_score + calibrator.b_))
            else:
                proba[:, column] = calibrator.predict(this_score)
        denominator = np.sum(proba, axis=1)[:, np.newaxis]
        uniform = np.full_like(proba, 1 / self._n_classes)  # every calibrator said 0
        return np.divide(proba, denominator, out=uniform, where=denominator != 0)


def _tfidf(vectorizer: TfidfVectorizer, docs: list[str]) -> Any:
    # TfidfVectorizer.transform, step by step: counts, then TfidfTransformer's arithmetic.
    if isinstance(vectorizer, CachedTfidfVectorizer):
        X = vectorizer.counts(docs)  # noqa: N806 - as built, converted once at the end
    else:
        _, X = vectorizer._count_vocab(docs, fixed_vocab=True)  # noqa: N806
    if vectorizer.binary:
        X.data.fill(1)
    if vectorizer.sublinear_tf:
        np.log(X.data, X.data)
        X.data += 1.0
    if vectorizer.use_idf:
        X.data *= vectorizer.idf_[X.indices]
    if vectorizer.norm == "l2":  # what normalize does for CSR, without its input checks
        inplace_csr_row_normalize_l2(X)
    elif vectorizer.norm is not None:
        X = normalize(X, norm=vectorizer.norm, copy=False)  # noqa: N806
    return X


def _side_by_side(blocks: list[Any], kind: type) -> Any:
    """``scipy.sparse.hstack(blocks).tocsr()`` for CSR blocks with the same rows, built
    directly: each row is its blocks' rows one after another, column indices shifted."""
    first = blocks[0]
    rows = first.shape[0]
    widths = [b.shape[1] for b in blocks]
    offsets = np.concatenate(([0], np.cumsum(widths[:-1])))
    per_row = sum(np.diff(b.indptr) for b in blocks)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    small = max(int(indptr[-1]), sum(widths)) <= np.iinfo(np.int32).max
    index_type = np.int32 if small else np.int64
    indices = np.empty(indptr[-1], dtype=index_type)
    data = np.empty(indptr[-1], dtype=np.result_type(*(b.dtype for b in blocks)))
    at = indptr[:-1].copy()
    for block, offset in zip(blocks, offsets, strict=True):
        counts = np.diff(block.indptr)
        # where each of this block's entries goes: its row's next free place, in order
        starts = np.repeat(at - block.indptr[:-1], counts)
        where = starts + np.arange(block.indptr[-1])
        indices[where] = block.indices + offset
        data[where] = block.data
        at += counts
    return kind((data, indices, indptr.astype(index_type)), shape=(rows, sum(widths)))
