"""Find the reports that hold nothing the model can read, so no evidence for any label."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from triage.core.explain import readable_feature_names


class EvidenceCheck:
    """The feature columns that count as evidence for one fitted features step.

    Evidence is a known feature (word, word pair or character n-gram) with a letter in it. Text
    in a script the model never saw, emoji, digits, punctuation, invisible characters or web
    clutter alone has none: at most it shares n-grams of digits and punctuation with reports of
    every label, and the classifier's answer is then its intercepts, not a reading of the report.
    Character n-grams count so that a misspelt report, or one whose words are all rare, is still
    read as the model was trained to read it.
    """

    def __init__(self, features: Any) -> None:
        names, _ = readable_feature_names(features)
        self._columns = np.fromiter(
            (any(ch.isalpha() for ch in name) for name in names), dtype=bool, count=len(names)
        )

    def rows_with_evidence(self, features: Any) -> np.ndarray:
        """One bool per row of the feature matrix ``features``: does it hold any evidence?"""
        x = features.tocsr() if sp.issparse(features) else sp.csr_array(features)
        hits = self._columns[x.indices] & (x.data != 0)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        return np.bincount(rows[hits], minlength=x.shape[0]) > 0
