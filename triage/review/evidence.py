"""Mark, in a report's own text, the words its model counted as evidence for its label."""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from triage.core.errors import ModelLoadError, TriageError
from triage.core.explain import Terms
from triage.core.model import TriageModel, load_model

EVIDENCE_TERMS = 10
MODELS_KEPT = 4  # model versions held in memory at once (most reviews are of one or two)


@dataclass(frozen=True)
class Piece:
    """A run of the report text: plain, or an occurrence of the evidence ``term``."""

    text: str
    term: str | None = None


@dataclass(frozen=True)
class Evidence:
    """A report text cut into pieces, the terms marked in it and the model's label order."""

    pieces: tuple[Piece, ...]
    terms: Terms  # (term, contribution), strongest first
    labels: tuple[str, ...]  # the model's labels in its own order; empty when not loaded
    label: str | None = None  # the label the terms pushed towards
    problem: str | None = None  # why nothing could be marked, for the page to say


class ModelShelf:
    """The model versions under ``models_dir``, each loaded on first use (verified, by
    :func:`triage.core.model.load_model`) and kept, the last :data:`MODELS_KEPT` used."""

    def __init__(self, models_dir: Path, keep: int = MODELS_KEPT) -> None:
        self.models_dir = Path(models_dir)
        self.keep = keep
        self._models: OrderedDict[str, TriageModel] = OrderedDict()
        self._lock = threading.Lock()

    def model(self, version: str) -> TriageModel:
        """The model of ``version``; raises :class:`ModelLoadError` when there is none to load
        (a version name that is not one directory of ``models_dir`` is refused unread)."""
        if not _plain_name(version):
            raise ModelLoadError(f"{version[:80]!r} is not a model version name")
        with self._lock:  # one load at a time: two reviewers opening a new version load it once
            model = self._models.get(version)
            if model is None:
                path = self.models_dir / version
                if not path.is_dir():
                    raise ModelLoadError(f"model {version} is not in {self.models_dir}")
                model = load_model(path)
                self._models[version] = model
                while len(self._models) > self.keep:
                    self._models.popitem(last=False)
            self._models.move_to_end(version)
            return model

    def evidence(self, version: str, text: str, top_k: int = EVIDENCE_TERMS) -> Evidence:
        """``text`` as model ``version`` reads it: its ``top_k`` strongest terms for the label it
        predicts, marked wherever they occur. A model that cannot be loaded leaves the text
        unmarked, with the reason in :attr:`Evidence.problem`."""
        try:
            model = self.model(version)
            prediction = model.predict([text], top_k=top_k)[0]
        except TriageError as err:
            return Evidence(pieces=(Piece(text),), terms=(), labels=(), problem=str(err))
        terms = prediction.top_terms
        return Evidence(
            pieces=mark_terms(text, [term for term, _ in terms]),
            terms=terms,
            labels=model.labels,
            label=prediction.label,
        )


def _plain_name(version: str) -> bool:
    return (
        0 < len(version) <= 64
        and version not in (".", "..")
        and version.isprintable()
        and not any(ch in version for ch in "/\\\0")
    )


def mark_terms(text: str, terms: Iterable[str]) -> tuple[Piece, ...]:
    """``text`` cut into plain pieces and pieces that are an occurrence of one of ``terms``.

    A term is one word or several separated by spaces, as the model's word features name
    them (lower-case, accents stripped). It occurs where its words stand in the text in that
    order, ignoring case and accents, each a whole word (no letter, digit or underscore just
    before or after it), separated by anything that is not part of a word, as the model's
    tokeniser splits words. Matching is plain string search in a folded copy of the text that
    has one character for each of the text's, so positions carry over unchanged. Where
    occurrences overlap, the one that starts first (the longer, at the same start) is kept.
    """
    folded = "".join(_fold(ch) for ch in text)
    found: list[tuple[int, int, str]] = []
    for term in dict.fromkeys(terms):
        words = term.split()
        if words:
            found.extend((start, end, term) for start, end in _occurrences(text, folded, words))
    found.sort(key=lambda span: (span[0], -span[1]))
    pieces: list[Piece] = []
    at = 0
    for start, end, term in found:
        if start < at:
            continue
        if start > at:
            pieces.append(Piece(text[at:start]))
        pieces.append(Piece(text[start:end], term))
        at = end
    if at < len(text) or not pieces:
        pieces.append(Piece(text[at:]))
    return tuple(pieces)


def _occurrences(text: str, folded: str, words: list[str]) -> Iterator[tuple[int, int]]:
    start = folded.find(words[0])
    while start != -1:
        end = _phrase_end(text, folded, start, words)
        if end is not None:
            yield start, end
        start = folded.find(words[0], start + 1)


def _phrase_end(text: str, folded: str, start: int, words: list[str]) -> int | None:
    """Where the phrase ``words`` starting at ``start`` ends, if it is there as whole words."""
    if start > 0 and _in_word(folded[start - 1]):
        return None
    at = start
    for position, word in enumerate(words):
        if position:
            gap = at
            while gap < len(folded) and not _in_word(folded[gap]):
                gap += 1
            if gap == at:
                return None
            at = gap
        if not folded.startswith(word, at):
            return None
        at += len(word)
        while at < len(text) and unicodedata.combining(text[at]):
            at += 1  # an accent written as its own character belongs to the letter before
        if at < len(folded) and _in_word(folded[at]):
            return None
    return at


def _in_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@lru_cache(maxsize=4096)
def _fold(ch: str) -> str:
    """``ch`` lower-cased with its accents stripped, as one character (``ch`` lower-cased, or
    itself, when that would not be one character)."""
    lower = ch.lower()
    if len(lower) != 1:
        lower = ch
    bare = "".join(c for c in unicodedata.normalize("NFKD", lower) if not unicodedata.combining(c))
    return bare if len(bare) == 1 else lower
