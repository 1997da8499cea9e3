"""Evidence mass: how much of a report the model knows, so that a report it cannot read is said
to be one (reason NO_SIGNAL) instead of answered from a handful of shared words.

A report's *known share* is the number of distinct words of its normalised text that are word
features of the model, over the number of distinct words in it. English reports the model was
trained on sit between 0.65 and 1 (median 0.92 on the shipped corpus); a German or Polish
report shares only names, numbers and loan words (0 to 0.3). Training records the smallest
share it accepts, ``MIN_SHARE_FACTOR`` times the 1st percentile of its own training texts'
shares, in the card (``scope``), so that serving judges a report by the corpus the model
learnt from; cards written before it get ``DEFAULT_MIN_KNOWN_SHARE``.

Both counts are cheap: the numerator comes from the feature matrix the model computes anyway
(its word part's unigram columns), the denominator from one split of the normalised text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import FeatureUnion

from triage.core.pipeline import READABLE_FEATURES

DEFAULT_MIN_KNOWN_SHARE = 0.45  # about what the shipped corpus gives (0.46)
MIN_SHARE_FACTOR = 0.6
MODEL_LANGUAGE = "en"  # the language of the shipped corpus and of every model trained on it


class KnownShare:
    """The unigram word columns of one fitted features step, to measure known shares."""

    def __init__(self, features: Any) -> None:
        parts = features.transformer_list if isinstance(features, FeatureUnion) else []
        if not parts:
            parts = [(READABLE_FEATURES, features)]
        names = [t.get_feature_names_out() for _, t in parts]
        mask = np.zeros(sum(len(n) for n in names), dtype=bool)
        offset = 0
        for (part, _), terms in zip(parts, names, strict=True):
            if part == READABLE_FEATURES:
                unigram = np.fromiter((" " not in t for t in terms), dtype=bool, count=len(terms))
                mask[offset : offset + len(terms)] = unigram
            offset += len(terms)
        self._unigram = mask

    def shares(self, docs: Sequence[str], features: Any) -> np.ndarray:
        """For each normalised document in ``docs`` (rows of ``features``), its known share; 1.0
        for a document without words (that is another check's business: no evidence)."""
        x = features.tocsr() if sp.issparse(features) else sp.csr_array(features)
        hits = self._unigram[x.indices] & (x.data != 0)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        known = np.bincount(rows[hits], minlength=x.shape[0]).astype(np.float64)
        words = np.fromiter(
            (_distinct_words(doc) for doc in docs), dtype=np.float64, count=len(docs)
        )
        return np.divide(known, words, out=np.ones_like(known), where=words > 0).clip(0.0, 1.0)


def _distinct_words(doc: str) -> int:
    # Whitespace tokens, lower-cased: "Bank," and "bank" count as two, on both sides of the
    # comparison (training measures its threshold the same way).
    return len(set(doc.lower().split()))


def min_known_share(shares: np.ndarray) -> float:
    """The smallest known share a model accepts, from its training texts' shares."""
    if shares.size == 0:
        return DEFAULT_MIN_KNOWN_SHARE
    return round(float(MIN_SHARE_FACTOR * np.percentile(shares, 1)), 4)
