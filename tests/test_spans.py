"""Evidence spans: the sentences and terms behind a label, as offsets into the original text."""

from __future__ import annotations

import random
import re
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.pipeline import Pipeline

from triage.core.explain import TermExplainer
from triage.core.forward import ForwardPass
from triage.core.identity import PLACEHOLDERS
from triage.core.model import TriageModel
from triage.core.normalise import normalise_text
from triage.core.pipeline import FEATURES, READABLE_FEATURES
from triage.core.spans import _INVISIBLE_CHARS, Evidence, SpanFinder
from triage.training.candidates import get_candidate
from triage.training.corpus import read_labelled
from triage.training.train import TrainResult

from .conftest import TINY

# A first-person fraud report: chat around one sentence about a fake bank call.
FRAUD_SENTENCE = (
    "On Tuesday a caller pretending to be from my bank told me to move my savings to a safe "
    "account, and I sent him four thousand pounds before I realised it was a scam."
)
FRAUD_REPORT = (
    "Hello, I hope this is the right place to write.\n"
    "We had a lovely weekend at the seaside with the children and the dog.\n"
    f"{FRAUD_SENTENCE}\n"
    "Anyway, the weather is nice again and the garden looks great. Thanks for reading!"
)

# Sentences of my own, to assemble long realistic reports from.
CHAT = [
    "I am writing this on my phone so sorry for any typos.",
    "My daughter says I should have called earlier but I was not sure who to tell.",
    "We live on a quiet street and nothing like this has happened before.",
    "It was raining all afternoon and the buses were late again.",
    "I have lived here for twenty years and know most of the neighbours.",
    "Please let me know if you need anything else from me.",
    "I kept all the letters and screenshots in a folder.",
    "Honestly I still feel shaken and a bit embarrassed about it.",
]
CONCERNS = [
    "Someone rang claiming to be a police officer and told my mother to withdraw cash for a "
    "courier to collect.",
    "A text about a missed parcel asked for a redelivery fee and then my bank card was used.",
    "Our shared drive was hit by ransomware overnight and every file is encrypted.",
    "Someone logged into my email account from abroad and changed the password.",
    "A man was filming the staff entrance and the security barriers at the stadium.",
    "An unattended rucksack with wires visible was left under a bench at the bus station.",
    "My car was broken into last night and the radio was stolen.",
    "Two cars collided at the roundabout and the road is closed.",
    "The investment platform promised monthly returns on crypto and now I cannot withdraw.",
    "Malware on my laptop is logging keystrokes according to the antivirus.",
]


def realistic_reports(n: int, length: int = 1700, seed: int = 0) -> list[str]:
    """``n`` reports of about ``length`` characters: chat, concerns, lines and paragraphs."""
    rng = random.Random(seed)
    reports = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < length:
            pool = CONCERNS if rng.random() < 0.4 else CHAT
            parts.append(rng.choice(pool) + rng.choice([" ", " ", "\n", "\n\n"]))
        reports.append("".join(parts).strip())
    return reports


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    """The served shape (identity terms read as placeholders), fitted on the tiny corpus."""
    data = read_labelled(TINY)
    return get_candidate("word_char_svm").build(0).fit(list(data.texts), list(data.labels))


@pytest.fixture(scope="module")
def finder(pipeline: Pipeline) -> SpanFinder:
    return SpanFinder(pipeline)


def scored(pipeline: Pipeline, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
    forward = ForwardPass.of(pipeline)
    assert forward is not None
    features = forward.features(texts)
    return features, forward.predict_proba(features).argmax(axis=1)


def evidence(pipeline: Pipeline, finder: SpanFinder, texts: Sequence[str], **k: int) -> list[Any]:
    features, predicted = scored(pipeline, texts)
    return finder.find(texts, features, predicted, **k)


def read_as_model(surface: str) -> str:
    """A surface form as the word vectoriser reads it (after the normaliser)."""
    text = unicodedata.normalize("NFKC", surface)
    text = re.sub(f"[{_INVISIBLE_CHARS}]", "", text).lower()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(re.findall(r"(?u)\b\w\w+\b", text))


def assert_well_formed(text: str, found: Evidence) -> None:
    previous = float("inf")
    taken: list[tuple[int, int]] = []
    for span in found.sentences:
        assert 0 <= span.start < span.end <= len(text)
        assert text[span.start : span.end] == text[span.start : span.end].strip()
        assert 0 < span.weight <= previous
        previous = span.weight
        assert all(span.end <= a or b <= span.start for a, b in taken), "sentences overlap"
        taken.append((span.start, span.end))
    previous = float("inf")
    for term in found.terms:
        assert 0 <= term.start < term.end <= len(text)
        assert 0 < term.weight <= previous
        previous = term.weight
        assert any(c.isalpha() for c in term.term)
        assert not all(w in ENGLISH_STOP_WORDS for w in term.term.split())
        assert not set(term.term.split()) & PLACEHOLDERS


def test_the_top_sentence_is_the_one_with_the_labels_words(
    pipeline: Pipeline, finder: SpanFinder
) -> None:
    features, predicted = scored(pipeline, [FRAUD_REPORT])
    assert pipeline.classes_[predicted[0]] == "fraud"
    (found,) = finder.find([FRAUD_REPORT], features, predicted)
    assert_well_formed(FRAUD_REPORT, found)
    top = found.sentences[0]
    assert FRAUD_REPORT[top.start : top.end] == FRAUD_SENTENCE
    assert all(other.weight < top.weight / 3 for other in found.sentences[1:])
    assert found.terms, "terms are shown"
    for term in found.terms:
        surface = FRAUD_REPORT[term.start : term.end]
        assert read_as_model(surface) == term.term
        assert FRAUD_REPORT.find(surface) == term.start  # the first occurrence
    assert {"bank", "savings"} <= {t.term for t in found.terms}


def test_the_terms_are_the_rows_contributions_found_in_the_text(
    pipeline: Pipeline, finder: SpanFinder
) -> None:
    # Every readable word or pair that pushed towards the label is found in the original text,
    # and nothing else is: the tokenisation is the vectoriser's.
    texts = realistic_reports(8, length=600, seed=3)
    features, predicted = scored(pipeline, texts)
    found = finder.find(texts, features, predicted, k_sentences=0, k_terms=10_000)
    explainer = TermExplainer(pipeline)
    expected = explainer.top_terms(features, predicted, 10_000)
    for text, evidence_, terms in zip(texts, found, expected, strict=True):
        assert {t.term for t in evidence_.terms} == {
            term for term, _ in terms if any(c.isalpha() for c in term)
        }
        assert_well_formed(text, evidence_)
        for t in evidence_.terms:
            assert read_as_model(text[t.start : t.end]) == t.term


def test_identity_placeholders_are_never_shown(pipeline: Pipeline, finder: SpanFinder) -> None:
    text = (
        "Omar Haddad and Oliver Bennett said a man near the mosque asked how many doors have "
        "cameras. The words xxname xxworship xxfaith xxorigin are not terms. A man was filming "
        "the staff entrance of the stadium."
    )
    (found,) = evidence(pipeline, finder, [text], k_terms=10_000)
    assert_well_formed(text, found)
    shown = " ".join(text[t.start : t.end] for t in found.terms).lower()
    assert "xx" not in shown and "omar" not in shown and "mosque" not in shown
    assert found.terms  # the rest of the report still explains


def test_offsets_index_the_original_text_through_unicode(
    pipeline: Pipeline, finder: SpanFinder
) -> None:
    # Full-width letters, a zero-width space and a soft hyphen inside words, a precomposed and
    # a combining accent, curly quotes, and a character that lowercases to two ("İ").
    text = (
        "İ was tóld “we are police”.\n"
        "A caller sai\u0301d my ba\u200bnk account was at risk, so I moved my sav\u00adings to "
        "a “safe” account and ｐａｉｄ the courier — a scam. The ﬁrst call came at noon."
    )
    features, predicted = scored(pipeline, [text])
    (found,) = finder.find([text], features, predicted, k_terms=10_000)
    assert_well_formed(text, found)
    surfaces = {t.term: text[t.start : t.end] for t in found.terms}
    assert surfaces == {
        "paid": "ｐａｉｄ",
        "bank": "ba\u200bnk",
        "savings": "sav\u00adings",
        "said": "sai\u0301d",
        "told": "tóld",
    }
    # The same terms as the model's own explanation, read from the normalised text.
    (expected,) = TermExplainer(pipeline).top_terms(features, predicted, 10_000)
    assert set(surfaces) == {term for term, _ in expected}
    top = text[found.sentences[0].start : found.sentences[0].end]
    assert top.startswith("A caller sai\u0301d") and top.endswith("the courier — a scam.")


def test_the_normalisers_invisible_characters_are_the_ones_joined() -> None:
    # Spans join words across exactly the characters the normaliser deletes.
    deleted = {
        chr(c)
        for c in range(0x10000)
        if not 0xD800 <= c < 0xE000
        and normalise_text(f"ab{chr(c)}cd") == "abcd"
        and unicodedata.normalize("NFKC", chr(c)) != ""
    }
    assert deleted == set(_INVISIBLE_CHARS)


def test_a_batch_gives_what_each_report_gives_alone(pipeline: Pipeline, finder: SpanFinder) -> None:
    texts = [*realistic_reports(6, seed=5), FRAUD_REPORT, "", "🙂 ok"]
    together = evidence(pipeline, finder, texts)
    alone = [evidence(pipeline, finder, [t])[0] for t in texts]
    assert together == alone
    assert together[-2] == Evidence()  # nothing to show for an empty report


def test_k_limits_and_mismatched_inputs(pipeline: Pipeline, finder: SpanFinder) -> None:
    features, predicted = scored(pipeline, [FRAUD_REPORT])
    (one,) = finder.find([FRAUD_REPORT], features, predicted, k_sentences=1, k_terms=1)
    assert len(one.sentences) == 1 and len(one.terms) == 1
    assert finder.find([FRAUD_REPORT], features, predicted, 0, 0) == [Evidence()]
    with pytest.raises(ValueError, match="do not belong together"):
        finder.find([FRAUD_REPORT, FRAUD_REPORT], features, predicted)


def test_pipelines_it_cannot_mirror_get_none(pipeline: Pipeline) -> None:
    assert SpanFinder.of(pipeline) is not None
    data = read_labelled(TINY)
    other = get_candidate("word_char_svm_plain").build(0)
    words = dict(other.named_steps[FEATURES].transformer_list)[READABLE_FEATURES]
    words.set_params(token_pattern=r"(?u)\b\w+\b")  # single letters too: not mirrored
    other.fit(list(data.texts), list(data.labels))
    assert SpanFinder.of(other) is None


# Words of the tiny corpus and the characters around words that need care.
PIECES = [
    "bank",
    "Bank",
    "BANK.",
    "savings",
    "ransomware",
    "stadium",
    "courier",
    "the",
    "a",
    "my",
    "account",
    "safe",
    "card",
    "Café",
    "ﬁle",
    "...",
    "!?",
    "—",
    "“",
    "”",
    "ｂａｎｋ",
    "İ",
    "ß",
    "4,000",
    "money-mule",
    "\u200b",
    "\n",
    "\n\n",
    " ",
    "e\u0301",
    "sav\u00adings",
    "ba\u200bnk",
]
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.lists(st.text(max_size=400), min_size=1, max_size=4))
def test_any_text_gives_offsets_within_it(
    pipeline: Pipeline, finder: SpanFinder, texts: list[str]
) -> None:
    found = evidence(pipeline, finder, texts, k_sentences=5, k_terms=20)
    for text, one in zip(texts, found, strict=True):
        assert_well_formed(text, one)
        for term in one.terms:
            assert read_as_model(text[term.start : term.end]) == term.term


@SETTINGS
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=80).map(" ".join), min_size=1))
def test_wordy_text_shows_every_readable_contribution(
    pipeline: Pipeline, finder: SpanFinder, texts: list[str]
) -> None:
    features, predicted = scored(pipeline, texts)
    found = finder.find(texts, features, predicted, k_sentences=3, k_terms=10_000)
    expected = TermExplainer(pipeline).top_terms(features, predicted, 10_000)
    for text, one, terms in zip(texts, found, expected, strict=True):
        assert_well_formed(text, one)
        assert {t.term for t in one.terms} == {t for t, _ in terms if any(c.isalpha() for c in t)}
        for term in one.terms:
            assert read_as_model(text[term.start : term.end]) == term.term


HOSTILE = {
    "a megabyte of report": FRAUD_REPORT * (1_000_000 // len(FRAUD_REPORT)),
    "one endless sentence": " ".join(["bank savings account"] * 60_000),
    "100k line breaks": "bank\n" * 100_000,
    "100k full stops": "bank." * 100_000 + " a " + "." * 200_000,
    "random unicode": "".join(map(chr, random.Random(1).choices(range(0x20, 0x30000), k=300_000))),
    "combining marks everywhere": "ba\u0301nk\U0001d167 " * 100_000,
    "random unicode among words": "".join(
        FRAUD_SENTENCE
        if i % 2
        else "".join(map(chr, random.Random(i).choices(range(0x30000), k=200)))
        for i in range(3_000)
    ),
    "one huge word": "b" * 1_000_000,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_is_bounded(pipeline: Pipeline, finder: SpanFinder, name: str) -> None:
    text = HOSTILE[name]
    features, predicted = scored(pipeline, [text])
    started = time.process_time()
    (found,) = finder.find([text], features, predicted)
    spent = time.process_time() - started
    assert_well_formed(text, found)
    assert all(s.end <= finder.max_chars for s in found.sentences)
    # Only the first max_chars characters are searched: a few milliseconds at most (generous
    # here for a shared machine).
    assert spent < 0.25, f"{name}: {spent * 1000:.0f} ms"


def test_cost_beside_predict(tiny_result: TrainResult, tiny_model: TriageModel) -> None:
    """µs per report for a batch of 64 ~1,700-character reports and for one at a time, beside
    the served model's predict in the same run (printed with -s); spans stay a small share."""
    finder = SpanFinder(tiny_result.pipeline)
    texts = realistic_reports(64)
    assert 1_600 <= np.mean([len(t) for t in texts]) <= 1_900
    features, predicted = scored(tiny_model.pipeline, texts)
    singles = [scored(tiny_model.pipeline, [t]) for t in texts]

    def best(fn: Any, repeat: int = 7) -> float:
        times = []
        for _ in range(repeat):
            started = time.process_time()
            fn()
            times.append(time.process_time() - started)
        return min(times) / len(texts) * 1e6

    for _ in range(2):  # warm both
        tiny_model.predict(texts)
        finder.find(texts, features, predicted)
    predict_batch = best(lambda: tiny_model.predict(texts))
    spans_batch = best(lambda: finder.find(texts, features, predicted))
    predict_one = best(lambda: [tiny_model.predict([t]) for t in texts], 3)
    spans_one = best(
        lambda: [finder.find([t], f, p) for t, (f, p) in zip(texts, singles, strict=True)],
        3,
    )
    print(
        f"\nspans per report: batch of 64 {spans_batch:.0f} µs beside predict {predict_batch:.0f} "
        f"µs ({spans_batch / predict_batch:.1%}); one at a time {spans_one:.0f} µs beside "
        f"{predict_one:.0f} µs ({spans_one / predict_one:.1%})"
    )
    assert spans_batch < 0.5 * predict_batch and spans_one < 0.5 * predict_one
