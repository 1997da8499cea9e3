"""Hostile text: no pattern can be made slow, and text with no known word is never a sure label."""

from __future__ import annotations

import importlib
import itertools
import json
import math
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.core import normalise
from triage.core.card import ModelCard
from triage.core.model import (
    BELOW_THRESHOLD,
    NEAR_TIE,
    NEAR_TIE_MARGIN,
    NO_EVIDENCE,
    NON_ENGLISH,
    TriageModel,
)
from triage.training.corpus import read_labelled

from .conftest import REPO, TINY

# The clutter pattern as it was before it was made linear, kept to prove the new one decides
# every line the same way. Its nested `(?:\s*[|/·•,]\s*\S+)*` is exponential in the number of
# ",x" pairs and its `\s*\*?\s*:?\W*` cubic in a run of spaces: only feed it short lines.
OLD_CLUTTER_LINES = re.compile(
    r"""^(?:
        (?:share|tweet|email|print|copy\ link|facebook|twitter|x|whatsapp|linkedin|reddit
           |pinterest|messenger|telegram)(?:\s*[|/·•,]\s*\S+)*
      | share\ (?:this|on|via)\b.*
      | (?:related|more|latest|popular|top|trending)\ (?:stories|articles|news|content|posts)\b.*
      | (?:read\ more|most\ read|you\ may\ also\ like|recommended\ for\ you|see\ also)\b.*
      | (?:have\ your\ say|leave\ a\ (?:comment|reply)|(?:post|add)\ (?:a|your)\ comment)\b.*
      | (?:sign\ in|log\ in|register)\ to\ (?:comment|reply|continue)\b.*
      | (?:your\ )?(?:name|e-?mail(?:\ address)?|comment|website)\s*\*?\s*:?
      | (?:submit|post)(?:\ comment)?
      | comments?\s*(?:\(\d+\))?
      | \d+\ comments?
      | have\ you\ got\ a\ story\ for\ us\b.*
      | (?:sign\ up|subscribe)\b.*\bnewsletter\b.*
      | (?:follow|like)\ us\ on\b.*
      | skip\ to\ (?:main\ )?content | back\ to\ top
      | (?:main\ menu|menu|home|search|close|advertisement)
      | (?:accept|reject|manage)\ (?:all\ )?cookies?\b.*
    )\W*$""",
    re.IGNORECASE | re.VERBOSE,
)
NEW_CLUTTER_LINES = normalise._CLUTTER_LINES

# ---------------------------------------------------------------------------------------------
# The new clutter pattern decides every line as the old one did.

# One character of each kind the share-bar tail tells apart: whitespace (and a newline), two
# separators, a letter, a digit, and punctuation that is neither.
_TAIL_ALPHABET = (" ", "\n", "\t", ",", "|", "a", "1", "!", "(", ")")
# A start for every branch of the pattern, so each branch sees every short tail.
_HEADS = (
    "",
    "share",
    "x",
    "email",
    "Copy link",
    "comments",
    "comment",
    "name",
    "your e-mail address",
    "1 comment",
    "post",
    "submit",
    "subscribe newsletter",
    "sign up",
    "read more",
    "share this",
    "accept all cookie",
    "skip to main content",
    "menu",
)


def test_every_short_line_is_decided_as_before() -> None:
    decided = 0
    for head in _HEADS:
        for length in range(5):
            for tail in itertools.product(_TAIL_ALPHABET, repeat=length):
                line = head + "".join(tail)
                assert bool(NEW_CLUTTER_LINES.match(line)) == bool(OLD_CLUTTER_LINES.match(line)), (
                    line
                )
                decided += 1
    assert decided > 200_000


_CLUTTER_TOKENS = (
    *("share", "x", "email", "e-mail", "Facebook", "copy link", "Twitter", "print", "your"),
    *("name", "address", "comment", "comments", "post", "submit", "this", "on", "read more"),
    *("subscribe", "newsletter", "sign up", "accept all cookies", "cookie", "skip to", "main"),
    *("content", "menu", "Home", "follow us on", "1", "12", "(3)", "(", ")", ",", "|", "/"),
    *("·", "•", " ", "  ", "\t", "\n", "!", "*", ":", "-", "a", "xy", "Z", "é"),
)
clutter_like_lines = st.lists(st.sampled_from(_CLUTTER_TOKENS), max_size=12).map("".join)


@settings(max_examples=2000, deadline=None)
@given(clutter_like_lines)
def test_clutter_like_lines_are_decided_as_before(line: str) -> None:
    assert bool(NEW_CLUTTER_LINES.match(line)) == bool(OLD_CLUTTER_LINES.match(line))


def test_every_line_of_the_real_data_is_decided_as_before() -> None:
    clutter = 0
    for path in (REPO / "training/data/train.jsonl", REPO / "training/data/test.jsonl", TINY):
        for row in path.read_text(encoding="utf-8").splitlines():
            text = unicodedata.normalize("NFKC", json.loads(row)["text"])
            for line in text.splitlines():
                old = bool(OLD_CLUTTER_LINES.match(line.strip()))
                assert bool(NEW_CLUTTER_LINES.match(line.strip())) == old, line
                clutter += old
    assert clutter > 100  # the scraped press releases carry clutter: both outcomes are compared


# ---------------------------------------------------------------------------------------------
# No pattern in the package takes more than linear time on any line.

# The modules that compile a regular expression; a test below fails when another one does.
_MODULES_WITH_PATTERNS = (
    "triage.core.normalise",
    "triage.core.artifacts",
    "triage.core.language",
    "triage.core.segments",
    "triage.core.spans",
    "triage.training.datacheck",
    "triage.archive.readers",
    "triage.rpc.status_codes",
    "triage.store.journal_writer",
    "triage.store.crypto",
    "triage.monitor.plots",
    "triage.review.charts",
    "triage.review.dashboard_pages",
    "triage.review.queue",
    "triage.review.queue_pages",
)
_REGEX_CALL = re.compile(
    r"\bre\.(?:compile|search|match|fullmatch|sub|subn|findall|finditer|split)\("
)


def _patterns(modules: tuple[str, ...]) -> dict[str, re.Pattern[str]]:
    loaded: list[ModuleType] = [importlib.import_module(name) for name in modules]
    return {
        f"{module.__name__}.{name}": value
        for module in loaded
        for name, value in vars(module).items()
        if isinstance(value, re.Pattern)
    }


PATTERNS = _patterns(_MODULES_WITH_PATTERNS)


def test_every_module_with_a_pattern_is_timed_here() -> None:
    package = REPO / "triage"
    using = {
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in package.rglob("*.py")
        if "v1" not in path.relative_to(package).parts  # generated code
        and _REGEX_CALL.search(path.read_text(encoding="utf-8"))
    }
    assert using == set(_MODULES_WITH_PATTERNS)
    assert len(PATTERNS) >= 8


# A call may take this long whatever the line, plus this much per character: 55 ms for a line
# of 20,000 characters, which the patterns take about a millisecond over (the old clutter
# pattern would take hours on it). Generous, because the machine running the tests is shared.
_FIXED_SECONDS = 0.005
_SECONDS_PER_CHARACTER = 2.5e-6
_LONGEST = 20_000


def _budget(line: str) -> float:
    return _FIXED_SECONDS + _SECONDS_PER_CHARACTER * len(line)


def _seconds(pattern: re.Pattern[str], line: str) -> float:
    """The best of up to three runs, so a pause of the test process alone cannot fail it."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        pattern.match(line)
        pattern.findall(line)  # tries every start, as search and sub do
        best = min(best, time.perf_counter() - start)
        if best <= _budget(line):
            break
    return best


def _repeats(unit: str) -> Iterator[int]:
    # One repeat at a time at first: an exponential pattern doubles its time with each one, so
    # it must cross the budget before the repeats double, or the test would hang, not fail.
    yield from range(1, 41)
    n = 80
    while n * len(unit) < _LONGEST:
        yield n
        n *= 2
    yield _LONGEST // len(unit)


def _first_slow_line(pattern: re.Pattern[str], seed: str, unit: str, end: str) -> str | None:
    """The first line ``seed + unit * n + end``, for growing n, that takes over its budget."""
    for n in _repeats(unit):
        line = seed + unit * n + end
        if _seconds(pattern, line) > _budget(line):
            return line
    return None


_SEEDS = ("", "share", "x", "name", "comments", "subscribe", "we use")
_UNITS = (",x", " ,", ", ", "|", " ", "\t", "x", "!", " newsletter", "1", "(1)")
_ENDS = ("", " a", "\na")


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_no_line_makes_a_pattern_slow(name: str) -> None:
    pattern = PATTERNS[name]
    slow = [
        (seed, unit, end, len(line))
        for seed, unit, end in itertools.product(_SEEDS, _UNITS, _ENDS)
        if (line := _first_slow_line(pattern, seed, unit, end)) is not None
    ]
    assert slow == []


@pytest.mark.parametrize(("seed", "unit", "end"), [("share", ",x", " a"), ("name", " ", "a")])
def test_the_time_check_catches_the_old_pattern(seed: str, unit: str, end: str) -> None:
    # Exponential in ",x" pairs, cubic in spaces: the check must fail on both (and quickly).
    assert _first_slow_line(OLD_CLUTTER_LINES, seed, unit, end) is not None


@pytest.mark.parametrize(
    "text",
    [
        "share" + ",x" * 50_000 + " a",
        "name" + " " * 100_000 + "a",
        "Facebook" + " | x" * 25_000 + "\nmore",
        "subscribe" + " newsletter" * 9_000 + "\n" + "!" * 1_000 + "a",
        ("we use cookies " * 7_000)[:100_000],
    ],
    ids=["share-bar", "spaces", "separators", "newsletters", "cookies"],
)
def test_a_hundred_thousand_character_line_is_normalised_quickly(text: str) -> None:
    start = time.perf_counter()
    normalise.normalise_text(text, max_chars=200_000)
    assert time.perf_counter() - start < 0.5  # about 20 ms; the old pattern took hours


# ---------------------------------------------------------------------------------------------
# Text with nothing the model can read is never a confident label.

# Sentences written for these tests: a bomb threat in Chinese, Arabic and Russian ("a bomb
# will go off at the railway station at noon tomorrow, evacuate everyone now"), then text with
# nothing the model can read.
NO_EVIDENCE_TEXTS = {
    "chinese": "明天中午火车站会有炸弹爆炸，请立即疏散所有人。",
    "arabic": "ستنفجر قنبلة في محطة القطار ظهر الغد، أخلوا الجميع الآن.",
    "russian": "Завтра в полдень на вокзале взорвётся бомба, немедленно эвакуируйте всех.",
    "emoji": "💣🔥🚆😱 😡😡",
    "zero_width": "\u200b\u200c\u200d\u2060\ufeff",
    "control": "\x01\x02\x1b\x7f\x9c",
    "punctuation": "?!... --- ,,, !!! :: ()",
    "numbers": "12:00 0800 999",
    "cookie_banner": "We use cookies to improve your experience on our site. Accept all cookies",
    "share_bar": "Share this article\nFacebook | Twitter | WhatsApp",
}


@pytest.mark.parametrize("text", NO_EVIDENCE_TEXTS.values(), ids=NO_EVIDENCE_TEXTS.keys())
def test_text_with_nothing_to_read_is_never_a_confident_label(
    tiny_model: TriageModel, text: str
) -> None:
    (p,) = tiny_model.predict([text])
    assert p.needs_review and p.review_reasons[0] == NO_EVIDENCE
    assert p.confidence < tiny_model.review_threshold
    assert p.top_terms == ()
    # The tiny corpus has as many reports of each label: its base rates are uniform.
    assert dict(p.scores) == pytest.approx({label: 0.25 for label in tiny_model.labels})
    assert p.confidence == p.scores[0][1] and p.label == p.scores[0][0]


def _trained_on(card: ModelCard, counts: dict[str, int]) -> ModelCard:
    data = card.training.data
    training = replace(card.training, data=replace(data, train=replace(data.train, labels=counts)))
    return replace(card, training=training)


def test_the_answer_without_evidence_is_the_training_base_rate(tiny_model: TriageModel) -> None:
    counts = {"cybercrime": 10, "fraud": 30, "general": 15, "terrorism_concern": 5}
    model = TriageModel(tiny_model.pipeline, _trained_on(tiny_model.card, counts))
    (p,) = model.predict([NO_EVIDENCE_TEXTS["russian"]])
    assert (p.label, p.confidence) == ("fraud", 0.5)
    assert dict(p.scores) == pytest.approx({k: v / 60 for k, v in counts.items()})
    assert p.review_reasons == (NO_EVIDENCE, NON_ENGLISH, BELOW_THRESHOLD)
    assert p.language == "ru"
    np.testing.assert_allclose(
        model.predict_proba([NO_EVIDENCE_TEXTS["emoji"]]), [[10 / 60, 30 / 60, 15 / 60, 5 / 60]]
    )


def test_no_evidence_is_reviewed_even_when_one_label_dominates(tiny_model: TriageModel) -> None:
    counts = {"cybercrime": 2, "fraud": 92, "general": 3, "terrorism_concern": 3}
    model = TriageModel(tiny_model.pipeline, _trained_on(tiny_model.card, counts))
    (p,) = model.predict([NO_EVIDENCE_TEXTS["chinese"]])
    assert p.confidence == 0.92 > model.review_threshold
    assert p.needs_review and p.review_reasons == (NO_EVIDENCE, NON_ENGLISH)
    assert p.language == "zh"


def test_reports_with_known_words_are_scored_as_before(tiny_model: TriageModel) -> None:
    # The pipeline's own probabilities are what every report got before the scope checks; a
    # report the model can read (evidence, and enough of its words known) still gets them.
    tiny = read_labelled(TINY).texts
    test_file = REPO / "training/data/test.jsonl"
    texts = tiny + [json.loads(row)["text"] for row in test_file.read_text("utf-8").splitlines()]
    before = tiny_model.pipeline.predict_proba(texts)
    proba = tiny_model.predict_proba(texts)
    predictions = tiny_model.predict(texts)
    # Its own training texts are all readable (the threshold is set below all of them).
    assert not any(NO_EVIDENCE in p.review_reasons for p in predictions[: len(tiny)])
    readable = 0
    for p, row, served in zip(predictions, before, proba, strict=True):
        if p.segments:  # a document of several items is scored by its items (test_segments)
            continue
        if NO_EVIDENCE in p.review_reasons:  # little it knows: the training label shares
            np.testing.assert_allclose(served, tiny_model._base_rates, rtol=0, atol=1e-12)
            continue
        readable += 1
        np.testing.assert_allclose(served, row, rtol=0, atol=1e-12)
        assert p.confidence == pytest.approx(row.max(), abs=1e-12)
        assert p.label == tiny_model.labels[row.argmax()]
        top_two = np.sort(row)[-2:]
        expected = tuple(
            reason
            for reason, flagged in (
                (BELOW_THRESHOLD, p.confidence < tiny_model.review_threshold),
                (NEAR_TIE, top_two[1] - top_two[0] <= NEAR_TIE_MARGIN),
            )
            if flagged
        )
        assert p.review_reasons == expected and p.needs_review == bool(expected)
    assert readable >= len(tiny)


def test_a_report_without_evidence_does_not_change_its_neighbours(
    tiny_model: TriageModel,
) -> None:
    english = "Someone logged into my email account and changed the password"
    batch = tiny_model.predict([english, NO_EVIDENCE_TEXTS["arabic"], english])
    alone = tiny_model.predict([english])[0]
    assert batch[0] == batch[2] == alone
    assert batch[1].review_reasons[0] == NO_EVIDENCE


_WORDS = ("bomb", "email", "account", "bank", "parcel", "the", "of", "12", "!", "💣", "бомба")
texts_with_or_without_words = st.one_of(
    st.text(max_size=200), st.lists(st.sampled_from(_WORDS), max_size=8).map(" ".join)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts_with_or_without_words, min_size=1, max_size=4))
def test_review_reasons_always_explain_the_flag(tiny_model: TriageModel, texts: list[str]) -> None:
    for p in tiny_model.predict(texts):
        assert p.needs_review == bool(p.review_reasons)
        assert (BELOW_THRESHOLD in p.review_reasons) == (p.confidence < tiny_model.review_threshold)
        if NO_EVIDENCE in p.review_reasons:
            assert p.top_terms == () and p.confidence < tiny_model.review_threshold
        assert sum(s for _, s in p.scores) == pytest.approx(1.0)
