"""A TfidfVectorizer that turns text into exactly scikit-learn's features, several times faster."""

from __future__ import annotations

import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

try:  # how this scikit-learn version hands sparse results back (matrix or array API)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # older releases return what they build

    def _align_api_if_sparse(X: Any) -> Any:  # noqa: N803 - scikit-learn's own name
        return X


# Distinct words whose features are remembered; beyond this the cache starts again before the
# next batch (rare words, numbers and ids would otherwise grow it without bound in a
# long-running server).
CACHE_WORDS = 200_000
# Whether a (non-ASCII) character is a combining mark, as scikit-learn's accent stripping asks.
_COMBINING: dict[str, bool] = {}
_DEFAULT_TOKENS = TfidfVectorizer().token_pattern  # r"(?u)\b\w\w+\b"
# Whether a (non-ASCII) character is not a word character (``\w``: alphanumeric or "_").
_SEPARATOR: dict[str, bool] = {}
# ASCII bytes that are not word characters become spaces; every other byte stays.
_ASCII_SEPARATORS = bytes(
    b if (chr(b).isalnum() or b == ord("_") or b >= 0x80) else ord(" ") for b in range(256)
)


def default_tokens(text: str) -> list[str]:
    r"""The matches of scikit-learn's default token pattern ``(?u)\b\w\w+\b`` in ``text``:
    runs of two or more word characters. Every non-word character becomes a space (ASCII ones
    by one ``bytes.translate``, the few other distinct ones by ``str.replace``), then the text
    is split; several times faster than the regular expression on long reports."""
    if not text.isascii():
        for char in _non_ascii_where(text, _SEPARATOR, _is_separator):
            text = text.replace(char, " ")
    spaced = text.encode("utf-8", "surrogatepass").translate(_ASCII_SEPARATORS)
    return [w for w in spaced.decode("utf-8", "surrogatepass").split() if len(w) > 1]


def strip_accents_unicode(text: str) -> str:
    """scikit-learn's ``strip_accents_unicode``, same result, without a Python loop per
    character: NFKD, then the combining marks deleted with one ``str.translate``."""
    if text.isascii():
        return text
    normalised = unicodedata.normalize("NFKD", text)
    if normalised.isascii():
        return normalised
    marks = {ord(c): None for c in _non_ascii_where(normalised, _COMBINING, _is_combining)}
    return normalised.translate(marks) if marks else normalised


def _is_separator(char: str) -> bool:
    return not (char.isalnum() or char == "_")  # not a \w character


def _is_combining(char: str) -> bool:
    return unicodedata.combining(char) != 0


def _non_ascii_where(text: str, memo: dict[str, bool], test: Callable[[str], bool]) -> list[str]:
    """The distinct non-ASCII characters of ``text`` that pass ``test`` (remembered in
    ``memo``, which starts again when it is full)."""
    found = []
    for char in set(text):
        if char > "\x7f":
            passes = memo.get(char)
            if passes is None:
                if len(memo) >= CACHE_WORDS:
                    memo.clear()
                passes = memo[char] = test(char)
            if passes:
                found.append(char)
    return found


class CachedTfidfVectorizer(TfidfVectorizer):
    """scikit-learn's ``TfidfVectorizer`` with a faster ``transform`` and the identical result.

    Fitting is scikit-learn's own. Transforming with the fitted vocabulary spends nearly all its
    time in Python loops over every character and every n-gram of every document (~2,400
    n-grams per report with char_wb 2-5-grams). Here:

    - accents are stripped by :func:`strip_accents_unicode` (one ``translate``, not a loop per
      character);
    - ``char_wb``: a document's n-grams are the concatenation of each whitespace-separated word's
      n-grams, so each distinct word is analysed once, by scikit-learn's own n-gram code, and
      its n-grams' vocabulary indices and counts go into a table of two growing arrays. A
      batch is then: each document's words counted (``Counter``), their table rows looked up
      (``map``), and their n-grams gathered and multiplied by the word counts with a few numpy
      operations; scipy sums the n-grams that several words share;
    - ``word`` with the default tokens and at most pairs: each token numbered by one dict
      lookup, every pair of the batch found at once by ``searchsorted`` among the vocabulary's
      pairs (two token numbers in one integer);
    - anything else (custom analyzers, stop words): scikit-learn's analyzer, with the
      vocabulary lookups done in one pass.

    Counts are whole numbers, so their sums are exact in any order; indices are sorted as
    scikit-learn's are (a test compares the matrices entry by entry, including on random
    Unicode text).
    """

    def _count_vocab(self, raw_documents: Iterable[Any], fixed_vocab: bool) -> Any:
        if not fixed_vocab:  # fitting: learn the vocabulary the usual way
            return super()._count_vocab(raw_documents, fixed_vocab)
        return self.vocabulary_, _align_api_if_sparse(self.counts(raw_documents))

    def counts(self, raw_documents: Iterable[Any]) -> Any:
        """The fitted vocabulary's counts in ``raw_documents``: a ``scipy.sparse.csr_array``
        as built (``transform`` hands scikit-learn's configured sparse type back instead)."""
        vocabulary: dict[str, int] = self.vocabulary_
        docs = list(raw_documents)
        if self.analyzer == "char_wb" and self.preprocessor is None:
            X = self._char_wb_counts(docs)  # noqa: N806 - scikit-learn's name
        elif self._plain_words():
            X = self._word_counts(docs)  # noqa: N806
        else:
            indices: list[int] = []
            indptr = [0]
            features_of = self._indices_per_document(vocabulary)
            for doc in docs:
                indices.extend(features_of(doc))
                indptr.append(len(indices))
            X = self._csr(indices, indptr, np.ones(len(indices), dtype=self.dtype))  # noqa: N806
        return X

    def _csr(
        self, indices: Sequence[int] | np.ndarray, indptr: Sequence[int] | np.ndarray, data: Any
    ) -> Any:
        index_type = np.int32 if len(indices) <= np.iinfo(np.int32).max else np.int64
        X = sp.csr_array(  # noqa: N806 - scikit-learn's name for a feature matrix
            (
                np.asarray(data, dtype=self.dtype),
                np.asarray(indices, dtype=index_type),
                np.asarray(indptr, dtype=index_type),
            ),
            shape=(len(indptr) - 1, len(self.vocabulary_)),
            dtype=self.dtype,
        )
        X.sum_duplicates()  # repeated features become counts; indices sorted, as scikit-learn's
        return X

    def _preprocessor(self) -> Callable[[Any], str]:
        """scikit-learn's preprocessing (decoding, lower case, accents), with the fast accent
        stripping when it is the built-in ``"unicode"`` one."""
        if self.preprocessor is not None or self.strip_accents != "unicode":
            preprocess = self.build_preprocessor()
            return lambda doc: preprocess(self.decode(doc))
        lower = self.lowercase

        def preprocess_fast(doc: Any) -> str:
            text = self.decode(doc)
            return strip_accents_unicode(text.lower() if lower else text)

        return preprocess_fast

    def _indices_per_document(self, vocabulary: dict[str, int]) -> Callable[[Any], list[int]]:
        analyze = self.build_analyzer()
        lookup = vocabulary.get

        def every_feature(doc: Any) -> list[int]:
            return [i for i in map(lookup, analyze(doc)) if i is not None]

        return every_feature

    def _plain_words(self) -> bool:
        """Word n-grams (at most pairs) from the default tokens, nothing else in the way."""
        return (
            self.analyzer == "word"
            and self.tokenizer is None
            and self.stop_words is None
            and self.preprocessor is None
            and self.token_pattern == _DEFAULT_TOKENS
            and self.ngram_range in ((1, 1), (1, 2), (2, 2))
        )

    def _word_counts(self, docs: list[Any]) -> Any:
        """Counts of the word unigrams and pairs of ``docs``, with each token looked up once and
        its pairs looked up all together (a pair is two token numbers in one integer, found
        with one ``searchsorted`` in the sorted pairs of the vocabulary)."""
        words = self._word_pairs()
        preprocess = self._preprocessor()
        tokens: list[int] = []
        indptr = [0]
        for doc in docs:
            tokens.extend(map(words.number.get, default_tokens(preprocess(doc)), repeat(-1)))
            indptr.append(len(tokens))
        number = np.asarray(tokens, dtype=np.int64)
        ends = np.asarray(indptr, dtype=np.int64)
        doc_of = np.repeat(np.arange(len(docs)), np.diff(ends))
        rows: list[np.ndarray] = []
        columns: list[np.ndarray] = []
        low, high = self.ngram_range
        if low == 1:
            unigram = words.unigram[number]  # -1 (unknown token) reads the last entry: -1
            kept = unigram >= 0
            rows.append(doc_of[kept])
            columns.append(unigram[kept])
        if high == 2 and len(number) > 1:
            first, second = number[:-1], number[1:]
            pair = (first << 32) | second
            at = np.minimum(np.searchsorted(words.pairs, pair), len(words.pairs) - 1)
            same_doc = doc_of[:-1] == doc_of[1:]
            found = (first >= 0) & (second >= 0) & same_doc
            if len(words.pairs):
                found &= words.pairs[at] == pair
            else:
                found[:] = False
            rows.append(doc_of[:-1][found])
            columns.append(words.pair_feature[at[found]])
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        column = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
        order = np.argsort(row, kind="stable")
        indptr_out = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=len(docs)), out=indptr_out[1:])
        return self._csr(column[order], indptr_out, np.ones(len(column), dtype=self.dtype))

    def _word_pairs(self) -> _WordPairs:
        cache: tuple[dict[str, int], _WordPairs] | None = self.__dict__.get("_word_pairs_table")
        if cache is None or cache[0] is not self.vocabulary_:
            cache = (self.vocabulary_, _WordPairs.of(self.vocabulary_))
            self.__dict__["_word_pairs_table"] = cache
        return cache[1]

    def _char_wb_counts(self, docs: list[Any]) -> Any:
        vocabulary: dict[str, int] = self.vocabulary_
        preprocess = self._preprocessor()
        table = self._word_table()
        ngrams = self._char_wb_ngrams  # scikit-learn's own, on one word at a time
        rows: list[int] = []  # per distinct word of each document: its row in the table
        repeats: list[int] = []  # ... and how often it occurs in the document
        indptr = [0]
        for doc in docs:
            counts = Counter(preprocess(doc).split())
            found = list(map(table.rows.get, counts))
            if None in found:
                for k, (word, row) in enumerate(zip(counts, found, strict=True)):
                    if row is None:
                        ids = [vocabulary.get(g) for g in ngrams(word)]
                        found[k] = table.add(word, [i for i in ids if i is not None])
            rows.extend(found)  # type: ignore[arg-type]  # no None left
            repeats.extend(counts.values())
            indptr.append(len(rows))
        indices, data, ends = table.gather(rows, repeats, indptr)
        return self._csr(indices, ends, data.astype(self.dtype, copy=False))

    @property
    def cached_words(self) -> int:
        """How many distinct words' features are remembered now (at most ``CACHE_WORDS``)."""
        cache = self.__dict__.get("_features_by_word")
        return len(cache[1].rows) if cache is not None and cache[0] is self.vocabulary_ else 0

    def _word_table(self) -> _WordTable:
        # Bound to the fitted vocabulary object: a refit makes a new one, and so a new table.
        cache: tuple[dict[str, int], _WordTable] | None = self.__dict__.get("_features_by_word")
        # A full table starts again between batches (a batch's rows stay valid while it runs).
        if cache is None or cache[0] is not self.vocabulary_ or cache[1].full:
            cache = (self.vocabulary_, _WordTable())
            self.__dict__["_features_by_word"] = cache
        return cache[1]

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state = dict(state)
        state.pop("_features_by_word", None)  # caches, not part of the model
        state.pop("_word_pairs_table", None)
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


@dataclass(frozen=True)
class _WordPairs:
    """A word vocabulary as arrays: each token of its terms numbered; per number, the feature
    of that token alone (-1: none); the pairs ``(first << 32) | second`` in order, with their
    features. The last ``unigram`` entry is -1, for tokens the vocabulary does not hold."""

    number: dict[str, int]
    unigram: np.ndarray
    pairs: np.ndarray
    pair_feature: np.ndarray

    @classmethod
    def of(cls, vocabulary: dict[str, int]) -> _WordPairs:
        number: dict[str, int] = {}
        singles: list[tuple[int, int]] = []
        doubles: list[tuple[int, int]] = []
        for term, feature in vocabulary.items():
            parts = term.split(" ")
            ids = [number.setdefault(p, len(number)) for p in parts]
            if len(ids) == 1:
                singles.append((ids[0], feature))
            elif len(ids) == 2:
                doubles.append(((ids[0] << 32) | ids[1], feature))
        unigram = np.full(len(number) + 1, -1, dtype=np.int64)
        for token, feature in singles:
            unigram[token] = feature
        doubles.sort()
        return cls(
            number=number,
            unigram=unigram,
            pairs=np.array([k for k, _ in doubles], dtype=np.int64),
            pair_feature=np.array([f for _, f in doubles], dtype=np.int64),
        )


class _WordTable:
    """Each remembered word's n-gram indices and counts, end to end in two growing arrays, so
    that a batch's words are gathered with a few numpy operations, not a Python loop."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.starts = np.zeros(1024, dtype=np.int64)
        self.lengths = np.zeros(1024, dtype=np.int64)
        self.indices = np.zeros(16_384, dtype=np.int64)
        self.counts = np.zeros(16_384, dtype=np.float64)
        self.used = 0
        # Threads of one process score with one model (a server without model processes):
        # adding grows and replaces the arrays, so adding and gathering take turns.
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        return len(self.rows) >= CACHE_WORDS

    def add(self, word: str, ids: list[int]) -> int:
        unique, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        with self._lock:
            known = self.rows.get(word)  # another thread may have added it meanwhile
            return known if known is not None else self._append(word, unique, counts)

    def _append(self, word: str, unique: np.ndarray, counts: np.ndarray) -> int:
        row = len(self.rows)
        if row == len(self.starts):
            self.starts = np.resize(self.starts, 2 * row)
            self.lengths = np.resize(self.lengths, 2 * row)
        end = self.used + len(unique)
        if end > len(self.indices):
            size = max(end, 2 * len(self.indices))
            self.indices = np.resize(self.indices, size)
            self.counts = np.resize(self.counts, size)
        self.indices[self.used : end] = unique
        self.counts[self.used : end] = counts
        self.starts[row], self.lengths[row] = self.used, len(unique)
        self.used = end
        self.rows[word] = row
        return row

    def gather(
        self, rows: list[int], repeats: list[int], indptr: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The n-gram indices and counts (times each word's repeats) of ``rows``, end to end,
        and where each document's part ends (``indptr`` counts words, this counts n-grams)."""
        picked = np.asarray(rows, dtype=np.int64)
        with self._lock:
            return self._gather(picked, repeats, indptr)

    def _gather(
        self, picked: np.ndarray, repeats: list[int], indptr: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lengths = self.lengths[picked]
        ends = np.zeros(len(picked) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ends[1:])
        # entry j of word k sits at starts[k] + j in the table and at ends[k] + j in the output
        at = np.repeat(self.starts[picked] - ends[:-1], lengths) + np.arange(ends[-1])
        times = np.repeat(np.asarray(repeats, dtype=np.float64), lengths)
        return self.indices[at], self.counts[at] * times, ends[np.asarray(indptr)]


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
