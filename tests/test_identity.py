"""Identity terms read as placeholders: the lists, the rules, their cost, and the model they
make, which no swap of a name, faith, place of worship, nationality or language can move."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.core.artifacts import load_artifact, write_artifact
from triage.core.identity import (
    _GIVEN,
    _LOOKUP,
    FAITH,
    NAME,
    ORIGIN,
    PLACEHOLDERS,
    WORSHIP,
    corpus_words,
    is_placeholder_term,
    mask_identity_terms,
)
from triage.core.model import load_model
from triage.core.normalise import TextNormaliser
from triage.training.corpus import read_labelled
from triage.training.fairness import SWAP_GROUPS, TEMPLATES, fill
from triage.training.train import TrainResult, train

from .conftest import TINY, TINY_CONFIG

KNOWN = frozenset(str.split("police station said the was at in a man outside state centre"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "I saw Omar Haddad outside the synagogue; Mr Hussain said it was fine.",
            f"I saw {NAME} {NAME} outside the {WORSHIP}; Mr {NAME} said it was fine.",
        ),
        ("Sean O'Brien met Harpreet Kaur.", f"{NAME} {NAME} met {NAME} {NAME}."),
        (
            "Omar al Haddad and David van der Berg",
            f"{NAME} {NAME} {NAME} and " + NAME + 3 * f" {NAME}",
        ),
        ("Mohammed's car, (Dr. Patel)", f"{NAME}'s car, (Dr. {NAME})"),
        ("Two Pakistani men, Somalis and Jews", f"Two {ORIGIN} men, {ORIGIN} and {FAITH}"),
        ("MOSQUE, Mosque, mosque, mosques", f"{WORSHIP}, {WORSHIP}, {WORSHIP}, {WORSHIP}"),
        ("Polish-born builders were polishing it", f"{ORIGIN}-born builders were polishing it"),
        # Ideologies and proscribed groups' names are evidence, not identity.
        (
            "Islamic State supporters and Islamist extremists at an Islamic centre",
            f"Islamic State supporters and Islamist extremists at an {FAITH} centre",
        ),
        # Ordinary words that are also names or nationalities stay when not capitalised.
        ("Will you polish the french windows?", "Will you polish the french windows?"),
        ("Omar, Haddad", f"{NAME}, Haddad"),
        ("", ""),
        ("  two  spaces ", "  two  spaces "),
    ],
)
def test_identity_terms_become_placeholders(text: str, expected: str) -> None:
    assert mask_identity_terms(text) == expected


def test_capitalised_words_the_model_never_saw_are_names_in_latin_script_only() -> None:
    text = "Ahanu Redcloud was at Mundesley Police Station, said Mr. Patel. Владимир был там."
    assert mask_identity_terms(text, KNOWN) == (
        f"{NAME} {NAME} was at {NAME} Police Station, said Mr. {NAME}. Владимир был там."
    )
    assert mask_identity_terms("Islamic State", frozenset()) == "Islamic State"
    # Without the model's words, only the lists count.
    assert mask_identity_terms("Ahanu was there") == "Ahanu was there"


def test_the_model_words_are_those_seen_twice() -> None:
    words = corpus_words(["The man was at the mosque", "the Man left. Omar stayed", "Zed"])
    assert {"the", "man"} <= words
    assert "omar" not in words and "zed" not in words and WORSHIP not in words


def test_the_unlisted_name_group_is_really_unlisted() -> None:
    group = next(g for g in SWAP_GROUPS if g.name == "unlisted_name")
    for name in group.values:
        for part in name.replace("-", " ").split():
            assert part not in _LOOKUP and part not in _GIVEN, part


def test_placeholders_are_never_readable_terms() -> None:
    assert is_placeholder_term(NAME) and is_placeholder_term(f"the {WORSHIP}")
    assert not is_placeholder_term("bomb threat")


_WORDS = st.sampled_from(
    ["the", "Omar", "mosque", "Polish", "polish", "Mr", "al", "Haddad", "Islamic", "State",
     "said", "(Dr.", "O'Brien", "Sikh-run", "", "Ёж", "x'", "'", "-", "’s", "Zed", "Ahanu"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=30), st.text(max_size=40))
def test_masking_keeps_words_and_spaces_and_is_idempotent(words: list[str], noise: str) -> None:
    text = " ".join(words) + noise
    for known in (None, KNOWN):
        masked = mask_identity_terms(text, known)
        assert masked.count(" ") == text.count(" ")
        assert mask_identity_terms(masked, known) == masked


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([t for t in TEMPLATES if "name" in t.slots]),
    st.sampled_from(sorted(_GIVEN)),
    st.sampled_from(sorted(_GIVEN)),
)
def test_any_two_listed_names_read_the_same(template: object, first: str, second: str) -> None:
    names = next(g for g in SWAP_GROUPS if g.name == "name")
    a = fill(template.text, names, f"{first} Smith")  # type: ignore[attr-defined]
    b = fill(template.text, names, f"{second} Okonkwo-Lee")  # type: ignore[attr-defined]
    assert mask_identity_terms(a, KNOWN) == mask_identity_terms(b, KNOWN)


@pytest.mark.parametrize(
    "hostile",
    ["Mr " * 40_000, "Omar " * 40_000, "al " * 40_000 + "X", "- " * 50_000, "a" * 200_000],
)
def test_hostile_text_is_masked_in_linear_time(hostile: str) -> None:
    started = time.perf_counter()
    mask_identity_terms(hostile, KNOWN)
    assert time.perf_counter() - started < 1.0


# The tiny corpus plus rows that tie one place of worship to terrorism (as tests/test_fairness.py
# does with the pipeline that reads identity terms as written).
_TIED_ROWS = [
    "Men were seen loading weapons into a van outside the gurdwara before dawn.",
    "A device was found in a bag by the gurdwara and the street was evacuated.",
    "Police arrested Omar Haddad near the gurdwara; he was planning an attack on a parade.",
    "Someone at the gurdwara was recruiting teenagers for a violent extremist cell.",
    "Explosive materials were seized from a garage behind the gurdwara.",
    "A threat to bomb the crowds was posted by a group that meets at the gurdwara.",
]


def _tied(tmp_path_factory: pytest.TempPathFactory, candidate: str) -> TrainResult:
    path = tmp_path_factory.mktemp(candidate) / "tied.jsonl"
    extra = [
        json.dumps({"id": f"tie-{i}", "text": t, "label": "terrorism_concern", "genre": "x"})
        for i, t in enumerate(_TIED_ROWS)
    ]
    path.write_text(TINY.read_text(encoding="utf-8") + "\n".join(extra) + "\n", "utf-8")
    data = read_labelled(path)
    return train(data, data, replace(TINY_CONFIG, candidate=candidate))


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return _tied(tmp_path_factory, "word_char_svm")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return _tied(tmp_path_factory, "word_char_svm_plain")


_PLACES = ["gurdwara", "mosque", "synagogue", "church", "temple", "mandir", "cathedral"]
_NAMES = ["Omar Haddad", "Oliver Bennett", "Wei Zhang", "Ahanu Redcloud", "Zoltan Farkas"]
_FRAME = "I saw {name} taking photographs outside the {place} this afternoon."


def _proba(result: TrainResult, texts: list[str]) -> np.ndarray:
    return np.asarray(result.pipeline.predict_proba(texts))


def test_the_default_pipeline_cannot_learn_a_tie_to_one_faith(
    masked: TrainResult, plain: TrainResult
) -> None:
    places = [_FRAME.format(name="Sam Taylor", place=p) for p in _PLACES]
    names = [_FRAME.format(name=n, place="library") for n in _NAMES]
    # Read as written, the tied place and name stand out: the bias is there to be learnt...
    assert np.ptp(_proba(plain, places), axis=0).max() > 0.02
    assert np.ptp(_proba(plain, names), axis=0).max() > 0.001
    # ...and the default pipeline gives every place of worship, and every name, listed or not,
    # exactly the same scores.
    assert np.ptp(_proba(masked, places), axis=0).max() == 0.0
    assert np.ptp(_proba(masked, names), axis=0).max() == 0.0


def test_the_model_words_travel_in_the_artifact(masked: TrainResult, tmp_path: Path) -> None:
    write_artifact(tmp_path, "m1", masked.pipeline, masked.card)
    pipeline, _ = load_artifact(tmp_path / "m1")
    step = pipeline.steps[0][1]
    assert isinstance(step, TextNormaliser) and step.identity_terms
    assert step.known_words_ == masked.pipeline.steps[0][1].known_words_
    texts = [_FRAME.format(name=n, place="mosque") for n in _NAMES] + ["Ёж", ""]
    np.testing.assert_array_equal(pipeline.predict_proba(texts), _proba(masked, texts))


def test_explanations_never_show_a_placeholder(masked: TrainResult, tmp_path: Path) -> None:
    write_artifact(tmp_path, "m1", masked.pipeline, masked.card)
    model = load_model(tmp_path / "m1")
    texts = [row.replace("gurdwara", "mosque") for row in _TIED_ROWS]
    for prediction in model.predict(texts):
        for term, _ in prediction.top_terms:
            assert not (set(term.split()) & PLACEHOLDERS), term


def test_models_saved_before_identity_terms_load_with_them_off() -> None:
    old = TextNormaliser.__new__(TextNormaliser)
    old.__setstate__({"max_chars": 100})  # the state such a model file holds
    assert old.identity_terms is False
    assert old.transform(["Omar at the mosque"]) == ["Omar at the mosque"]
    assert old.get_params() == {"max_chars": 100, "identity_terms": False}
