"""The served model: a fitted pipeline plus its card, predicting labelled, explained results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.pipeline import Pipeline

from triage.core.artifacts import ModelCard, load_artifact, load_artifact_bytes
from triage.core.errors import ModelLoadError
from triage.core.evidence import EvidenceCheck
from triage.core.explain import TermExplainer, Terms
from triage.core.forward import ForwardPass
from triage.core.language import LanguageCheck, LanguageVerdict
from triage.core.pipeline import CLASSIFIER, FEATURES, NORMALISE
from triage.core.scope import DEFAULT_MIN_KNOWN_SHARE, MODEL_LANGUAGE, KnownShare
from triage.core.segments import find_items
from triage.core.spans import NO_EVIDENCE as NO_SPANS
from triage.core.spans import Evidence, SpanFinder

DEFAULT_TOP_TERMS = 5
# Why a prediction needs review, as Prediction.review_reasons names them (stable values, kept in
# the decision record; the proto's ReviewReason names are in brackets), in this order:
NO_EVIDENCE = "no_evidence"  # [NO_SIGNAL] too little the model can read: training base rates
NON_ENGLISH = "non_english"  # [NON_ENGLISH] not in the model's language (see ``language``)
MIXED_DOCUMENT = "mixed_document"  # [MIXED_DOCUMENT] several items whose labels disagree
BELOW_THRESHOLD = "below_threshold"  # [LOW_CONFIDENCE] confidence under the review threshold
NEAR_TIE = "near_tie"  # [NEAR_TIE] the runner-up is within NEAR_TIE_MARGIN of the label
REVIEW_REASONS = (NO_EVIDENCE, NON_ENGLISH, MIXED_DOCUMENT, BELOW_THRESHOLD, NEAR_TIE)
# Their names on the wire and in archive output (the proto's ReviewReason without its prefix).
REASON_NAMES = {
    NO_EVIDENCE: "NO_SIGNAL",
    NON_ENGLISH: "NON_ENGLISH",
    MIXED_DOCUMENT: "MIXED_DOCUMENT",
    BELOW_THRESHOLD: "LOW_CONFIDENCE",
    NEAR_TIE: "NEAR_TIE",
}
# Top two scores this close: the runner-up is named (``secondary_label``) and the answer reviewed.
NEAR_TIE_MARGIN = 0.2
# A (Latin-script) text with at least this share of its words known to the model is in the
# model's language without asking the language detector.
KNOWN_LANGUAGE_SHARE = 0.6
_IN_LANGUAGE: dict[str, LanguageVerdict] = {}


def _latin(text: str) -> bool:
    """Whether the first characters' letters are (almost) all ASCII: a cheap guard so that a
    text in another script never skips the language check."""
    head = text[:2000]
    extra = len(head.encode("utf-8", "surrogatepass")) - len(head)  # >= 1 per non-ASCII char
    return head.isascii() or extra <= len(head) // 25


def _fitted_model_context() -> Any:
    # The pipeline's parameters were validated when it was fitted, and its features are tf-idf
    # weights of text, finite by construction: re-checking both on every call costs about a
    # tenth of a single report's latency.
    return config_context(assume_finite=True, skip_parameter_validation=True)


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one report."""

    label: str
    confidence: float
    scores: tuple[tuple[str, float], ...]  # every label with its probability, highest first
    needs_review: bool
    top_terms: Terms  # (term, contribution) that pushed towards ``label``, strongest first
    model_version: str
    # Why ``needs_review`` is set, in REVIEW_REASONS order; empty if not.
    review_reasons: tuple[str, ...] = ()
    # The runner-up when it is within NEAR_TIE_MARGIN of ``label``, or the second concern of a
    # mixed document; "" otherwise.
    secondary_label: str = ""
    # The report's language (ISO 639-1) when the check could tell; "" when it could not.
    language: str = ""
    # The items of a document of several (a listing page, a digest), in order; () otherwise.
    segments: tuple[Segment, ...] = ()
    # Where in the text the label came from (sentences and terms with character offsets).
    evidence: Evidence = NO_SPANS


@dataclass(frozen=True)
class Segment:
    """One item of a document of several: ``text[start:end]`` and its own answer."""

    start: int
    end: int
    label: str
    confidence: float
    scores: tuple[tuple[str, float], ...]
    review_reasons: tuple[str, ...]


class TriageModel:
    """A verified pipeline and its card; ``predict`` scores many texts in one model call."""

    def __init__(self, pipeline: Pipeline, card: ModelCard) -> None:
        self.pipeline = pipeline
        self.card = card
        self.labels: tuple[str, ...] = tuple(card.labels)
        self.version = card.version
        self.review_threshold = card.review_threshold
        self._explainer = TermExplainer(pipeline)
        self._evidence = EvidenceCheck(pipeline.named_steps[FEATURES])
        self._known = KnownShare(pipeline.named_steps[FEATURES])
        scope = card.training.scope
        self.language = scope.language if scope is not None else MODEL_LANGUAGE
        self.min_known_share = (
            scope.min_known_share if scope is not None else DEFAULT_MIN_KNOWN_SHARE
        )
        self._language = LanguageCheck(expected=self.language)
        _IN_LANGUAGE.setdefault(self.language, LanguageVerdict(self.language, True, 1.0))
        self._spans = SpanFinder.of(pipeline)  # None: word features spans cannot mirror
        self._base_rates = _base_rates(card)
        self._forward = ForwardPass.of(pipeline)  # None: a shape scikit-learn runs as usual

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text, columns in ``labels`` order: those ``predict``
        serves (a text the model cannot read gets the training base rates; a document of
        several items the length-weighted mean of its items' scores)."""
        return self._scored(list(texts)).proba[: len(texts)]

    def predict(self, texts: Sequence[str], top_k: int = DEFAULT_TOP_TERMS) -> list[Prediction]:
        """Score ``texts`` in one vectorised call; ``top_k`` explanation terms each (0: none)."""
        if len(texts) == 0:
            return []
        texts = list(texts)
        n = len(texts)
        scored = self._scored(texts)
        proba, signal = scored.proba, scored.signal
        best = proba.argmax(axis=1)
        # The documents' own rows (the rows of their items follow; a slice is a copy).
        own = scored.features if scored.features.shape[0] == n else scored.features[:n]
        terms = self._explainer.top_terms(own, best[:n], top_k)
        verdicts = self._verdicts(texts, scored.shares[:n])
        order = np.argsort(-proba, axis=1, kind="stable")
        answers = []
        for i in range(n):
            segments = tuple(
                Segment(start, end, *self._answer(proba, order, row, bool(signal[row])))
                for (start, end), row in scored.items[i]
            )
            answers.append(
                (
                    segments,
                    self._answer(
                        proba, order, i, bool(signal[i]), not verdicts[i].in_scope, segments
                    ),
                )
            )
        # Evidence spans for the answers a person will review (the review desk shows them in
        # the text): they cost about a quarter of a prediction, which every accepted answer
        # would otherwise pay for nothing; an accepted answer keeps its explanation terms.
        spans = [NO_SPANS] * n
        shown = [i for i, (_, a) in enumerate(answers) if a[3] and signal[i]]
        if self._spans is not None and shown:
            rows = own if len(shown) == n else own[shown]
            found = self._spans.find([texts[i] for i in shown], rows, best[shown])
            for i, evidence in zip(shown, found, strict=True):
                spans[i] = evidence
        predictions = []
        for i, (segments, (label, confidence, scores, reasons)) in enumerate(answers):
            runner_up = self.labels[order[i, 1]] if len(self.labels) > 1 else ""
            secondary = runner_up if NEAR_TIE in reasons or MIXED_DOCUMENT in reasons else ""
            predictions.append(
                Prediction(
                    label=label,
                    confidence=confidence,
                    scores=scores,
                    needs_review=bool(reasons),
                    # Without evidence the label is the base rates' and no term chose it.
                    top_terms=terms[i] if signal[i] else (),
                    model_version=self.version,
                    review_reasons=reasons,
                    secondary_label=secondary,
                    language=verdicts[i].language,
                    segments=segments,
                    evidence=spans[i],
                )
            )
        return predictions

    def _verdicts(self, texts: list[str], shares: np.ndarray) -> list[LanguageVerdict]:
        """The language of each text. A text mostly made of words this model knows is in its
        language, without asking the detector (foreign texts share 0 to 0.3 of their words with
        it, its own training texts 0.65 to 1); the others are checked."""
        verdicts: list[LanguageVerdict | None] = [
            _IN_LANGUAGE[self.language] if share >= KNOWN_LANGUAGE_SHARE and _latin(t) else None
            for t, share in zip(texts, shares, strict=True)
        ]
        rest = [i for i, v in enumerate(verdicts) if v is None]
        for i, verdict in zip(rest, self._language.check([texts[i] for i in rest]), strict=True):
            verdicts[i] = verdict
        return [v for v in verdicts if v is not None]

    def _answer(
        self,
        proba: np.ndarray,
        order: np.ndarray,
        row: int,
        signal: bool,
        foreign: bool = False,
        segments: tuple[Segment, ...] = (),
    ) -> tuple[str, float, tuple[tuple[str, float], ...], tuple[str, ...]]:
        """Label, confidence, scores and review reasons of one row of ``proba``."""
        top = order[row]
        confidence = float(proba[row, top[0]])
        margin = confidence - float(proba[row, top[1]]) if len(top) > 1 else 1.0
        flags = {
            NO_EVIDENCE: not signal,
            NON_ENGLISH: foreign,
            MIXED_DOCUMENT: len({s.label for s in segments}) > 1,
            BELOW_THRESHOLD: confidence < self.review_threshold,
            NEAR_TIE: signal and margin <= NEAR_TIE_MARGIN,
        }
        reasons = tuple(reason for reason in REVIEW_REASONS if flags[reason])
        scores = tuple((self.labels[j], float(proba[row, j])) for j in top)
        return self.labels[top[0]], confidence, scores, reasons

    def _scored(self, texts: list[str]) -> _Scored:
        # Each item of a document of several is scored too, in the same model call: its rows
        # follow the documents' rows.
        items = [find_items(text) for text in texts]
        extra = [
            text[start:end]
            for text, spans in zip(texts, items, strict=True)
            for start, end in spans
        ]
        features, docs, proba = self._features_and_proba([*texts, *extra])
        # With little it can read, a classifier's answer is mostly its intercepts, which a
        # calibrator fitted on real reports can map to near certainty (a bomb threat in Chinese
        # came out "general 1.000"). The honest answer is the prior: each label's share of the
        # training data.
        shares = self._known.shares(docs, features)
        signal = self._evidence.rows_with_evidence(features) & (shares >= self.min_known_share)
        proba = np.where(signal[:, np.newaxis], proba, self._base_rates)
        rows: list[list[tuple[tuple[int, int], int]]] = []
        at = len(texts)
        for i, spans in enumerate(items):
            mine = list(zip(spans, range(at, at + len(spans)), strict=True))
            at += len(spans)
            rows.append(mine)
            readable = [r for _, r in mine if signal[r]]
            if readable:  # the document's scores: its readable items', weighted by their length
                lengths = np.array([e - s for (s, e), r in mine if signal[r]], dtype=np.float64)
                proba[i] = lengths @ proba[readable] / lengths.sum()
                signal[i] = True
        return _Scored(features=features, proba=proba, signal=signal, shares=shares, items=rows)

    def _features_and_proba(self, texts: Sequence[str]) -> tuple[Any, list[str], np.ndarray]:
        with _fitted_model_context():
            docs = self.pipeline.named_steps[NORMALISE].transform(list(texts))
            if self._forward is not None:
                features = self._forward.features_of(docs)
                return features, docs, self._forward.predict_proba(features)
            features = self.pipeline.named_steps[FEATURES].transform(docs)
            proba = self.pipeline.named_steps[CLASSIFIER].predict_proba(features)
            return features, docs, np.asarray(proba)


@dataclass(frozen=True)
class _Scored:
    features: Any  # one row per text, then one per item of every document of several
    proba: np.ndarray  # the same rows, as served
    signal: np.ndarray  # per row: something the model can read
    shares: np.ndarray  # per row: the known share of its words (triage.core.scope)
    items: list[list[tuple[tuple[int, int], int]]]  # per text: (its item's offsets, its row)


def _base_rates(card: ModelCard) -> np.ndarray:
    """Each label's share of the training data, in ``card.labels`` order (uniform if unknown)."""
    counts = card.training.data.train.labels
    rates = np.array([counts.get(label, 0) for label in card.labels], dtype=np.float64)
    total = rates.sum()
    return rates / total if total > 0 else np.full(len(rates), 1 / len(rates))


def load_model(path: Path | str) -> TriageModel:
    """Load the model at ``path`` (a version directory or ``models/current``), verified first
    and loaded without running code (see :mod:`triage.core.artifacts`)."""
    pipeline, card = load_artifact(Path(path))
    return _served(pipeline, card)


def load_model_bytes(card: ModelCard, model_bytes: bytes) -> TriageModel:
    """Load a model shipped as bytes with its card, verified exactly as :func:`load_model`."""
    pipeline, card = load_artifact_bytes(card, model_bytes)
    return _served(pipeline, card)


def _served(pipeline: Pipeline, card: ModelCard) -> TriageModel:
    try:
        return TriageModel(pipeline, card)
    except Exception as err:  # trusted types holding state no triage training wrote
        raise ModelLoadError(
            f"model {card.version[:80]} cannot serve: its pipeline is not one triage trained "
            f"({type(err).__name__})"
        ) from None
