"""Show where in a report its label came from: sentences and terms, as offsets into the text.

A reviewer checking a decision needs to see the words that made it, in the text the caller
sent, not in the normalised text the model read. :class:`SpanFinder` takes the feature matrix
the model has already computed (no second vectorisation), keeps each row's readable word
features (words and word pairs; no character n-gram, no stop-word-only term, no identity
placeholder) that push towards the predicted label (tf-idf value x class weight > 0), and finds
them in the original text:

- The original text is tokenised once, with offsets, by a pattern equivalent to the word
  vectoriser's ``\\b\\w\\w+\\b`` on the text the normaliser hands it: characters the normaliser
  deletes (zero-width and other invisible characters) and, when the vectoriser strips accents,
  combining marks do not split a word there, so "fr\\u200baud" and "re\\u0301sume\\u0301" are
  one token each, as the model saw them.
- Each token is read as the vectoriser reads it: lowercased, and, if it is not ASCII, in NFKC
  form without invisible characters and through the vectoriser's own preprocessor (scikit-learn's
  ``strip_accents_unicode``). Full-width letters, ligatures and accents find their features.
- Each word is looked up once (one dict look-up, driven from C) for its id among the words of
  the model's terms; single words and adjacent pairs are then matched to terms, and the terms
  to the row's contributions, for the whole batch at once with numpy.
- The text is split into sentences (a run of ``. ! ?`` with any closing quote or bracket,
  followed by white space; or a line break) by one linear-time pattern, keeping offsets.
- A term's contribution is shared equally by its occurrences; a sentence's weight is the sum of
  the shares of the occurrences that start in it (a word pair spanning two sentences counts for
  the one its first word is in).

Evidence is then the ``k_sentences`` heaviest sentences, strongest first, and the ``k_terms``
strongest terms found, each with the offsets of its **first** occurrence (one span per term
keeps the answer small and bounded; the sentences show where the weight lies). A term without a
letter ("000", "20") weighs in its sentence but is not shown as a term.

Offsets index the Python string the caller passed (code points): ``text[start:end]`` is the
sentence (without surrounding white space) or the term as written, in its case.

Cost: one regular-expression pass over each text and one dict look-up per word, the rest in
numpy per batch. On a shared two-core machine, about 150-250 µs per ~1,700-character report in
a batch of 64 (a quarter of the model's own predict there) and 300-400 µs one at a time (a
sixth); tests/test_spans.py measures it beside predict.

Limits, never a wrong offset:

- Only the first ``max_chars`` characters of a text are searched (default: twice the
  normaliser's own cap, which applies after white space is folded and clutter lines dropped),
  so the work per report is bounded whatever its size: a few milliseconds for a megabyte of
  report, one endless sentence or a hundred thousand line breaks; a few tens of milliseconds
  for a megabyte of random Unicode among words (every word read again; the model itself
  spends 50-100 ms on such a text).
- A word on a clutter line the normaliser dropped is still matched (and shares its term's
  weight) if the same term counts elsewhere in the report; a pair across a dropped line is
  not found.
- A symbol that NFKC turns into letters ("™" -> "TM") joins the neighbouring word in the
  model's text but not here; that word is not found.
- Identity placeholders never match: the original says "Omar", the feature says ``xxname``.
- Sentences are split on punctuation, not parsed: "Mr. Smith" ends a sentence after "Mr.", and
  a text without punctuation or line breaks is one sentence.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, pairwise, repeat
from operator import not_
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from triage.core.explain import class_weights, readable_feature_names
from triage.core.identity import is_placeholder_term
from triage.core.normalise import DEFAULT_MAX_CHARS
from triage.core.pipeline import CLASSIFIER, FEATURES, NORMALISE, READABLE_FEATURES

DEFAULT_SENTENCES = 2
DEFAULT_TERMS = 5

# The vectoriser's token pattern (scikit-learn's default), the only one this module can mirror.
_DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_WORD = re.compile(_DEFAULT_TOKEN_PATTERN)
_PLAIN_SPLIT = re.compile(r"(\w\w+)")  # the same words as the token pattern, as a split
# The characters the normaliser deletes before the vectoriser sees the text (its _INVISIBLE;
# tests/test_spans.py checks the two agree on every character of the Basic Multilingual Plane).
_INVISIBLE_CHARS = "\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u2060\ufeff\u00ad"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LETTER, _JOINER, _ASTRAL_MARK = 1, 2, 4  # kinds of characters beyond ASCII

# A sentence ends after a run of . ! ? (with any closing quotes or brackets) followed by white
# space or the end of the text, or at a line break; the white space after it belongs to its end.
# Linear: the pattern starts with one character class (a fast scan), the look-behind stops a
# run that failed being tried again from each of its characters, and possessive quantifiers
# give nothing back.
_LINE_BREAK = r"\n\r\v\f\x1c-\x1e\x85"
_SENTENCE_END = re.compile(
    rf"""[.!?{_LINE_BREAK}]
        (?: (?<=[{_LINE_BREAK}])                                     # a line break
          | (?<![.!?]{{2}}) [.!?]*+ ["'\u201d\u2019)\]]*+ (?=\s|\Z)  # a whole run, then space
        ) \s*+""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Span:
    """A sentence of the original text, ``text[start:end]``, and the push it holds."""

    start: int
    end: int
    weight: float


@dataclass(frozen=True, slots=True)
class TermSpan:
    """A word or word pair as the features name it (lowercased, accents stripped), its push,
    and its first occurrence in the original text, ``text[start:end]``, as written."""

    term: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where one report's label came from: sentences and terms, strongest first."""

    sentences: tuple[Span, ...] = ()
    terms: tuple[TermSpan, ...] = ()


NO_EVIDENCE = Evidence()


@dataclass
class _Batch:
    """The words and sentences of a batch's texts, end to end, with the row of each."""

    scanned: list[str]  # each text as searched (its first max_chars characters)
    ids: list[int]  # each word's id among the terms' words, -1 for any other word
    starts: list[int]
    ends: list[int]
    words_per_row: list[int]
    sentence_ends: list[int]  # where each sentence ends (its trailing white space included)
    sentences_per_row: list[int]


class SpanFinder:
    """A fitted pipeline's readable word terms, their class weights, and how its word
    vectoriser reads a word; built once per model, then :meth:`find` per batch."""

    def __init__(self, pipeline: Pipeline, max_chars: int | None = None) -> None:
        vectorizer, offset, n_features = _word_vectorizer(pipeline.named_steps[FEATURES])
        if not _mirrorable(vectorizer):
            raise ValueError("the word features are not read in a way spans can mirror")
        weights = class_weights(pipeline.named_steps[CLASSIFIER])
        if weights.shape[1] != n_features:
            raise ValueError(
                f"classifier has {weights.shape[1]} weights but features give {n_features}"
            )
        # Only the word part's readable terms (explain's rule), never one holding a placeholder.
        names, readable = readable_feature_names(vectorizer)
        keep = np.flatnonzero(readable)
        shown = np.fromiter((not is_placeholder_term(str(names[c])) for c in keep), bool)
        keep = keep[shown]
        terms = [str(names[c]) for c in keep]
        self._terms = terms
        self._n_terms = len(terms)
        # Shown as terms only with a letter: "000" or "20" tells a reader nothing (they still
        # weigh in their sentence).
        self._letterless = np.array([not any(c.isalpha() for c in t) for t in terms], dtype=bool)
        # Word columns are offset, offset + 1, ...: their term index, -1 if not shown.
        self._offset, self._n_words = offset, len(names)
        self._term_of_column = np.full(len(names), -1, dtype=np.int64)
        self._term_of_column[keep] = np.arange(len(keep))
        self._weights = np.ascontiguousarray(weights[:, offset + keep], dtype=np.float64)
        self._n_features = n_features
        # Every word of a term gets an id; a term is its first word's id and its second's (-1
        # for a single word).
        self._word_id: dict[str, int] = {}
        first_id, second_id = [], []
        for t in terms:
            words = [self._word_id.setdefault(w, len(self._word_id)) for w in t.split(" ")]
            first_id.append(words[0])
            second_id.append(words[1] if len(words) > 1 else -1)
        self._first_id = np.asarray(first_id, dtype=np.int64)
        self._second_id = np.asarray(second_id, dtype=np.int64)
        self._lowercase = bool(vectorizer.lowercase)
        self._preprocess = vectorizer.build_preprocessor()
        stop = vectorizer.get_stop_words()
        self._stop_words = frozenset(stop) if stop else frozenset()
        # Characters inside a word that the model's text does not hold: the normaliser's
        # invisible characters and, when accents are stripped, combining marks. A text with
        # none of them (nearly all) is split by the plain pattern, the fastest.
        strips = vectorizer.strip_accents == "unicode"
        marks, astral_marks = _combining_marks() if strips else ("", "")
        self._joiners = frozenset(_INVISIBLE_CHARS + marks)
        self._astral_marks = frozenset(astral_marks)
        joiners = re.escape(_INVISIBLE_CHARS + marks)
        self._joined_split = re.compile(f"(\\w(?:[{joiners}]*+\\w)++)")
        # Marks beyond the Basic Multilingual Plane make a slow character class: this pattern
        # is used only for a text that holds one.
        self._astral_split = re.compile(
            f"(\\w(?:(?:[{joiners}]|[{_ranges(astral_marks)}])*+\\w)++)"
            if astral_marks
            else self._joined_split.pattern
        )
        normaliser = pipeline.named_steps.get(NORMALISE)
        cap = int(getattr(normaliser, "max_chars", DEFAULT_MAX_CHARS) or DEFAULT_MAX_CHARS)
        self.max_chars = max_chars if max_chars is not None else 2 * cap

    @classmethod
    def of(cls, pipeline: Pipeline) -> SpanFinder | None:
        """A span finder for ``pipeline``, or None if its word features cannot be mirrored
        (no word part, another token pattern or analyser, or no linear weights)."""
        try:
            return cls(pipeline)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def find(
        self,
        texts: Sequence[str],
        features: Any,
        predicted: np.ndarray,
        k_sentences: int = DEFAULT_SENTENCES,
        k_terms: int = DEFAULT_TERMS,
    ) -> list[Evidence]:
        """For each text, the ``k_sentences`` sentences and ``k_terms`` terms that pushed most
        towards its class index in ``predicted``, strongest first; ``features`` is the matrix
        the pipeline computed for ``texts``."""
        x = features.tocsr() if sp.issparse(features) else sp.csr_array(features)
        predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
        n = len(texts)
        if not (x.shape[0] == n == len(predicted)) or x.shape[1] != self._n_features:
            raise ValueError(
                f"{n} texts, {len(predicted)} predictions and a "
                f"{x.shape[0]}x{x.shape[1]} feature matrix do not belong together"
            )
        k_sentences, k_terms = max(k_sentences, 0), max(k_terms, 0)
        if k_sentences == 0 and k_terms == 0:
            return [NO_EVIDENCE] * n
        # Every row's contributing terms at once: shown word terms, value x weight > 0, keyed
        # row * n_terms + term. (The word part is a tenth of the matrix: picked out first.)
        column = x.indices
        lo, hi = self._offset, self._offset + self._n_words
        words = np.flatnonzero((column < hi) & (column >= lo) if lo else column < hi)
        term = self._term_of_column[column[words] - lo]
        shown = term >= 0
        words, term = words[shown], term[shown]
        rows = np.searchsorted(x.indptr, words, side="right") - 1
        push = x.data[words] * self._weights[predicted[rows], term]
        positive = push > 0
        key = rows[positive] * self._n_terms + term[positive]
        push = push[positive]
        if key.size == 0:
            return [NO_EVIDENCE] * n
        batch = self._read_batch(texts, np.bincount(key // self._n_terms, minlength=n) > 0)
        return self._evidence(batch, key, push, k_sentences, k_terms)

    def _match_keys(self, key: np.ndarray) -> tuple[np.ndarray, ...]:
        """The batch's contributions as words find them: a single word by row * n_ids + its
        id, a pair by (row * n_ids + first id) * n_ids + second id; each sorted, with the
        contribution it stands for. And which word ids can be a single word, or start or end
        a pair, in any row (index -1: a word without an id), to look up only those."""
        n_ids = len(self._word_id)
        term = key % self._n_terms
        first_id, second_id = self._first_id[term], self._second_id[term]
        first = key // self._n_terms * n_ids + first_id
        single = np.flatnonzero(second_id < 0)
        pair = np.flatnonzero(second_id >= 0)
        single = single[np.argsort(first[single], kind="stable")]
        pair_key = first[pair] * n_ids + second_id[pair]
        order = np.argsort(pair_key, kind="stable")
        can = np.zeros((3, n_ids + 1), dtype=bool)
        can[0, first_id[single]] = True
        can[1, first_id[pair]] = True
        can[2, second_id[pair]] = True
        return first[single], single, pair_key[order], pair[order], can

    def _read_batch(self, texts: Sequence[str], wanted: np.ndarray) -> _Batch:
        batch = _Batch([], [], [], [], [], [], [])
        word_id = self._word_id.get
        for text, want in zip(texts, wanted.tolist(), strict=True):
            if not (want and isinstance(text, str)):  # nothing to find: no words read
                text = ""
            scanned = text[: self.max_chars]
            tokens, starts, ends = self._tokens(scanned, cut=len(scanned) < len(text))
            batch.scanned.append(scanned)
            batch.ids += map(word_id, tokens, repeat(-1))
            batch.starts += starts
            batch.ends += ends
            batch.words_per_row.append(len(tokens))
            sentence_ends = [m.end() for m in _SENTENCE_END.finditer(scanned)]
            if not sentence_ends or sentence_ends[-1] < len(scanned):
                sentence_ends.append(len(scanned))
            batch.sentence_ends += sentence_ends
            batch.sentences_per_row.append(len(sentence_ends))
        return batch

    def _evidence(
        self, batch: _Batch, key: np.ndarray, push: np.ndarray, k_sentences: int, k_terms: int
    ) -> list[Evidence]:
        n = len(batch.scanned)
        ids = np.asarray(batch.ids, dtype=np.int64)
        starts = np.asarray(batch.starts, dtype=np.int64)
        ends = np.asarray(batch.ends, dtype=np.int64)
        row_of = np.repeat(np.arange(n, dtype=np.int64), batch.words_per_row)
        # Occurrences of the rows' contributing terms: single words, then adjacent pairs.
        single_keys, singles, pair_keys, pairs, can = self._match_keys(key)
        n_ids = len(self._word_id)
        word_key = row_of * n_ids + ids
        first = np.flatnonzero(can[0, ids])
        first, contribution = _lookup(single_keys, singles, word_key[first], first)
        if pair_keys.size and ids.size > 1:
            maybe = np.flatnonzero(can[1, ids[:-1]] & can[2, ids[1:]] & (row_of[:-1] == row_of[1:]))
            found, found_pairs = _lookup(
                pair_keys, pairs, word_key[maybe] * n_ids + ids[maybe + 1], maybe
            )
            first = np.concatenate([first, found])
            contribution = np.concatenate([contribution, found_pairs])
        row = row_of[first]
        start = starts[first]
        # A term's push is shared by its occurrences; a sentence holds the shares of those that
        # start in it. Sentences are keyed row * stride + end offset, sorted as they come.
        occurrences = np.bincount(contribution, minlength=key.size)
        share = push[contribution] / occurrences[contribution]
        sentence_end = np.asarray(batch.sentence_ends, dtype=np.int64)
        sentence_row = np.repeat(np.arange(n, dtype=np.int64), batch.sentences_per_row)
        stride = self.max_chars + 2
        sentence = np.searchsorted(
            sentence_row * stride + sentence_end, row * stride + start, side="right"
        )
        weight = np.bincount(sentence, weights=share, minlength=sentence_end.size)
        sentence_start = np.concatenate([[0], sentence_end[:-1]])
        sentence_start[np.cumsum(batch.sentences_per_row)[:-1]] = 0  # each row starts at 0
        heavy = np.flatnonzero(weight > 0)
        heavy = _best_per_row(heavy, sentence_row[heavy], weight[heavy], k_sentences)
        # Terms: each found contribution's first occurrence (its earliest word), the readable
        # ones, strongest first in each row.
        earliest = np.full(key.size, ids.size, dtype=np.int64)
        np.minimum.at(earliest, contribution, first)
        found = np.flatnonzero(earliest < ids.size)
        found = found[~self._letterless[key[found] % self._n_terms]]
        found = _best_per_row(found, key[found] // self._n_terms, push[found], k_terms)
        word, term = earliest[found], key[found] % self._n_terms
        return _assemble(
            batch.scanned,
            _row_ranges(sentence_row[heavy], n),
            sentence_start[heavy].tolist(),
            sentence_end[heavy].tolist(),
            weight[heavy].tolist(),
            _row_ranges(key[found] // self._n_terms, n),
            [self._terms[t] for t in term.tolist()],
            starts[word].tolist(),
            ends[word + (self._second_id[term] >= 0)].tolist(),  # a pair ends with the next word
            push[found].tolist(),
        )

    def _tokens(self, text: str, cut: bool) -> tuple[list[str], list[int], list[int]]:
        """The words of ``text`` as the vectoriser reads them, with their start and end
        offsets. ``cut``: ``text`` is a prefix, so a word touching its end may be a part of a
        longer one, and is left out."""
        lowered = text.lower() if self._lowercase else text
        if len(lowered) != len(text):  # a character lowercased to two: offsets must stay
            lowered = text
        ready = lowered is not text or not self._lowercase  # lowercased as the model's words
        split = _PLAIN_SPLIT
        plain = text.isascii()  # then every word is read as it is
        if not plain:
            # Its distinct characters beyond ASCII (a few curly quotes in most reports) say how
            # to split it and whether any word needs reading again.
            kinds = 0
            for c in set(_NON_ASCII.findall(text)):
                kinds |= (c in self._joiners) * _JOINER | (c in self._astral_marks) * _ASTRAL_MARK
                kinds |= c.isalnum() * _LETTER
            if kinds & _ASTRAL_MARK:
                split = self._astral_split
            elif kinds & _JOINER:
                split = self._joined_split
            plain = kinds == 0
        parts = split.split(lowered)
        edges = list(accumulate(map(len, parts)))  # ends of: gap, word, gap, word, ..., gap
        tokens = parts[1::2]
        starts = edges[0::2][: len(tokens)]
        ends = edges[1::2]
        if cut and tokens and ends[-1] == len(text):
            del tokens[-1], starts[-1], ends[-1]
        if not (plain and ready):
            tokens, starts, ends = self._read(text, tokens, starts, ends, ready)
        if self._stop_words:
            kept = [t not in self._stop_words for t in tokens]
            tokens = list(compress(tokens, kept))
            starts = list(compress(starts, kept))
            ends = list(compress(ends, kept))
        return tokens, starts, ends

    def _read(
        self, text: str, tokens: list[str], starts: list[int], ends: list[int], ready: bool
    ) -> tuple[list[str], list[int], list[int]]:
        """Read each word that may not be as the vectoriser sees it (not ASCII, or, unless
        ``ready``, not lowercased yet) again from the original text, as the normaliser and the
        vectoriser read it; one that falls apart into several words gives each its whole span."""
        odd = list(
            compress(
                range(len(tokens)),
                map(not_, map(str.isascii, tokens)) if ready else map(_not_lower_ascii, tokens),
            )
        )
        pieces_of: dict[int, list[str]] = {}
        for t in odd:
            word = unicodedata.normalize("NFKC", text[starts[t] : ends[t]])
            read = self._preprocess(_INVISIBLE.sub("", word))
            pieces = _WORD.findall(read)
            if pieces == [read]:
                tokens[t] = read
            else:
                pieces_of[t] = pieces
        if not pieces_of:
            return tokens, starts, ends
        out: tuple[list[str], list[int], list[int]] = ([], [], [])
        for t, token in enumerate(tokens):
            for piece in pieces_of.get(t, (token,)):
                out[0].append(piece)
                out[1].append(starts[t])
                out[2].append(ends[t])
        return out


def _lookup(
    keys: np.ndarray, values: np.ndarray, queries: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``positions`` whose query is one of the sorted ``keys``, and that key's value."""
    if keys.size == 0:
        return positions[:0], values[:0]
    where = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    hit = keys[where] == queries
    return positions[hit], values[where[hit]]


def _best_per_row(items: np.ndarray, rows: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """``items`` (in row order) sorted by row, then heaviest first (ties in a fixed order),
    at most ``k`` of each row."""
    if items.size == 0:
        return items
    # One stable sort on one key: the row, less a weight scaled below one row's step.
    scale = 2 * float(np.abs(weights).max()) + 1
    order = np.argsort(rows * scale - weights)  # ties: deterministic, in no promised order
    items, rows = items[order], rows[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows)
    return items[rank < k]


def _row_ranges(rows: np.ndarray, n: int) -> list[tuple[int, int]]:
    """For items sorted by row: each of the ``n`` rows' items as a range."""
    bounds = np.searchsorted(rows, np.arange(n + 1)).tolist()
    return list(pairwise(bounds))


def _assemble(
    scanned: list[str],
    sentence_ranges: list[tuple[int, int]],
    sentence_starts: list[int],
    sentence_ends: list[int],
    sentence_weights: list[float],
    term_ranges: list[tuple[int, int]],
    terms: list[str],
    term_starts: list[int],
    term_ends: list[int],
    term_weights: list[float],
) -> list[Evidence]:
    out = []
    for text, (sa, sb), (ta, tb) in zip(scanned, sentence_ranges, term_ranges, strict=True):
        if sa == sb and ta == tb:
            out.append(NO_EVIDENCE)
            continue
        sentences = []
        for i in range(sa, sb):
            start, end = sentence_starts[i], sentence_ends[i]
            body = text[start:end]
            start += len(body) - len(body.lstrip())
            end -= len(body) - len(body.rstrip())
            sentences.append(Span(start, end, round(sentence_weights[i], 6)))
        out.append(
            Evidence(
                tuple(sentences),
                tuple(
                    TermSpan(terms[i], term_starts[i], term_ends[i], round(term_weights[i], 6))
                    for i in range(ta, tb)
                ),
            )
        )
    return out


def _not_lower_ascii(token: str) -> bool:
    return not (token.isascii() and token.islower())


def _mirrorable(vectorizer: TfidfVectorizer) -> bool:
    return (
        vectorizer.analyzer == "word"
        and vectorizer.tokenizer is None
        and vectorizer.preprocessor is None
        and vectorizer.token_pattern in (_DEFAULT_TOKEN_PATTERN, _DEFAULT_TOKEN_PATTERN[4:])
        and vectorizer.strip_accents in (None, "unicode")
        and vectorizer.ngram_range[0] == 1
        and vectorizer.ngram_range[1] <= 2
        and hasattr(vectorizer, "vocabulary_")
    )


def _word_vectorizer(features: Any) -> tuple[TfidfVectorizer, int, int]:
    """The readable word vectoriser of a features step, its first column, and how many
    columns the features have in all."""
    if isinstance(features, TfidfVectorizer):
        return features, 0, len(features.vocabulary_)
    if isinstance(features, FeatureUnion):
        found: tuple[TfidfVectorizer, int] | None = None
        offset = 0
        for name, part in features.transformer_list:
            if name == READABLE_FEATURES and isinstance(part, TfidfVectorizer):
                found = (part, offset)
            known = getattr(part, "vocabulary_", None)  # names of 150,000 n-grams cost 30 ms
            offset += len(known) if known is not None else len(part.get_feature_names_out())
        if found is not None:
            return found[0], found[1], offset
    raise ValueError("the features have no readable word part")


@functools.cache
def _combining_marks() -> tuple[str, str]:
    """Every character scikit-learn's ``strip_accents_unicode`` deletes (a non-zero canonical
    combining class; none is a word character): those in the Basic Multilingual Plane, and
    those beyond it (a regular expression's class of these is slow, so it is kept apart)."""
    marks = [chr(c) for c in range(0x30000) if unicodedata.combining(chr(c))]
    return "".join(c for c in marks if c <= "\uffff"), "".join(c for c in marks if c > "\uffff")


def _ranges(chars: str) -> str:
    """``chars`` (sorted) as a character class body of ranges."""
    ranges: list[list[int]] = []
    for c in map(ord, chars):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
