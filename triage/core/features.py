"""A TfidfVectorizer that turns text into exactly scikit-learn's features, several times faster."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

try:  # how this scikit-learn version hands sparse results back (matrix or array API)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # older releases return what they build

    def _align_api_if_sparse(X: Any) -> Any:  # noqa: N803 - scikit-learn's own name
        return X


# Distinct words whose features are remembered; beyond this the cache starts again (rare words,
# numbers and ids would otherwise grow it without bound in a long-running server).
CACHE_WORDS = 200_000


class CachedTfidfVectorizer(TfidfVectorizer):
    """scikit-learn's ``TfidfVectorizer`` with a faster ``transform`` and the identical result.

    Fitting is scikit-learn's own. Transforming with the fitted vocabulary spends nearly all its
    time in a Python loop over every n-gram of every document (~2,400 per report with char_wb
    2-5-grams). Here:

    - ``char_wb``: a document's n-grams are the concatenation of each whitespace-separated word's
      n-grams, so each distinct word is analysed once, by scikit-learn's own n-gram code, and the
      vocabulary indices of its n-grams are cached; a document costs one lookup per word.
    - other analyzers: scikit-learn's analyzer, with the vocabulary lookups done in one pass.

    Counts are then summed exactly as scikit-learn sums them (a test compares the matrices
    entry by entry, including on random Unicode text).
    """

    def _count_vocab(self, raw_documents: Iterable[Any], fixed_vocab: bool) -> Any:
        if not fixed_vocab:  # fitting: learn the vocabulary the usual way
            return super()._count_vocab(raw_documents, fixed_vocab)
        vocabulary: dict[str, int] = self.vocabulary_
        features_of = self._indices_per_document(vocabulary)
        indices: list[int] = []
        indptr = [0]
        for doc in raw_documents:
            indices.extend(features_of(doc))
            indptr.append(len(indices))
        index_type = np.int32 if len(indices) <= np.iinfo(np.int32).max else np.int64
        X = sp.csr_array(  # noqa: N806 - scikit-learn's name for a feature matrix
            (
                np.ones(len(indices), dtype=self.dtype),
                np.asarray(indices, dtype=index_type),
                np.asarray(indptr, dtype=index_type),
            ),
            shape=(len(indptr) - 1, len(vocabulary)),
            dtype=self.dtype,
        )
        X.sum_duplicates()  # repeated features become counts; indices sorted, as scikit-learn's
        return vocabulary, _align_api_if_sparse(X)

    def _indices_per_document(self, vocabulary: dict[str, int]) -> Callable[[Any], list[int]]:
        if self.analyzer != "char_wb":
            analyze = self.build_analyzer()
            lookup = vocabulary.get

            def every_feature(doc: Any) -> list[int]:
                return [i for i in map(lookup, analyze(doc)) if i is not None]

            return every_feature

        preprocess = self.build_preprocessor()
        cache = self._word_cache()
        ngrams = self._char_wb_ngrams  # scikit-learn's own, on one word at a time

        def word_features(word: str) -> list[int]:
            found = [vocabulary.get(g) for g in ngrams(word)]
            return [i for i in found if i is not None]

        def by_word(doc: Any) -> list[int]:
            out: list[int] = []
            for word in self._white_spaces.sub(" ", preprocess(self.decode(doc))).split():
                known = cache.get(word)
                if known is None:
                    if len(cache) >= CACHE_WORDS:
                        cache.clear()
                    known = cache[word] = word_features(word)
                out.extend(known)
            return out

        return by_word

    @property
    def cached_words(self) -> int:
        """How many distinct words' features are remembered now (at most ``CACHE_WORDS``)."""
        cache = self.__dict__.get("_features_by_word")
        return len(cache[1]) if cache is not None and cache[0] is self.vocabulary_ else 0

    def _word_cache(self) -> dict[str, list[int]]:
        # Bound to the fitted vocabulary object: a refit makes a new one, and so a new cache.
        cache: tuple[dict[str, int], dict[str, list[int]]] | None = self.__dict__.get(
            "_features_by_word"
        )
        if cache is None or cache[0] is not self.vocabulary_:
            cache = (self.vocabulary_, {})
            self.__dict__["_features_by_word"] = cache
        return cache[1]

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state = dict(state)
        state.pop("_features_by_word", None)  # a cache, not part of the model
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            state.update(_packed_vocabulary(vocabulary))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if _PACKED_TERMS in state:  # absent in artifacts pickled before the packing
            state["vocabulary_"] = _unpacked_vocabulary(
                state.pop(_PACKED_TERMS), state.pop(_PACKED_ENDS), state.pop(_PACKED_INDICES)
            )
        super().__setstate__(state)


# The fitted vocabulary is saved as three arrays instead of a dict: skops writes a dict as one
# JSON node per entry and per key type (~1 KB a term: 78 MB and 28 s to save the default
# model, 3 s to load it); as arrays it is about a megabyte and loads in milliseconds.
_PACKED_TERMS, _PACKED_ENDS, _PACKED_INDICES = (
    "_vocabulary_utf8",
    "_vocabulary_ends",
    "_vocabulary_indices",
)


def _packed_vocabulary(vocabulary: dict[str, int]) -> dict[str, np.ndarray]:
    """The vocabulary as its terms' UTF-8 bytes end to end, each term's end offset, its index."""
    encoded = [term.encode("utf-8", "surrogatepass") for term in vocabulary]
    return {
        _PACKED_TERMS: np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
        _PACKED_ENDS: np.cumsum([len(e) for e in encoded], dtype=np.int64),
        _PACKED_INDICES: np.fromiter(vocabulary.values(), dtype=np.int64, count=len(vocabulary)),
    }


def _unpacked_vocabulary(
    terms: np.ndarray, ends: np.ndarray, indices: np.ndarray
) -> dict[str, int]:
    data = np.asarray(terms, dtype=np.uint8).tobytes()
    stops = np.asarray(ends, dtype=np.int64)
    fits = len(stops) == len(indices) and (
        len(stops) == 0
        or (stops[-1] == len(data) and stops[0] >= 0 and bool(np.all(stops[1:] >= stops[:-1])))
    )
    if not fits:
        raise ValueError("the packed vocabulary's arrays do not fit together")
    starts = [0, *stops[:-1].tolist()]
    return {
        data[start:stop].decode("utf-8", "surrogatepass"): int(index)
        for start, stop, index in zip(
            starts, stops.tolist(), np.asarray(indices).tolist(), strict=True
        )
    }
