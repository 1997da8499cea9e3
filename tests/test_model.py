import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.core.model import TriageModel
from triage.training.corpus import read_labelled
from triage.training.train import train

from .conftest import TINY, TINY_CONFIG


def test_prediction_carries_every_field(tiny_model: TriageModel) -> None:
    (p,) = tiny_model.predict(
        ["Someone logged into my email account and changed the password on it"], top_k=3
    )
    assert p.label == "cybercrime"
    assert p.scores[0][0] == p.label
    assert sorted(label for label, _ in p.scores) == sorted(tiny_model.labels)
    scores = [s for _, s in p.scores]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)
    assert p.confidence == scores[0]
    assert p.needs_review == (p.confidence < tiny_model.review_threshold)
    assert p.model_version == "v1"
    assert 0 < len(p.top_terms) <= 3
    terms = [t for t, _ in p.top_terms]
    assert set(terms) <= {
        "someone",
        "logged",
        "email",
        "account",
        "changed",
        "password",
        "email account",
        "changed the",
        "the password",
        "logged into",
        "into my",
    }
    assert "on" not in terms and "the" not in terms  # stop words never shown as reasons
    assert all(w > 0 for _, w in p.top_terms)
    assert all(term.replace(" ", "").isalpha() for term in terms)  # words, not indices


def test_batch_prediction_equals_one_by_one(tiny_model: TriageModel) -> None:
    texts = read_labelled(TINY).texts[::5]
    batch = tiny_model.predict(texts)
    single = [tiny_model.predict([t])[0] for t in texts]
    assert [b.label for b in batch] == [s.label for s in single]
    for b, s in zip(batch, single, strict=True):
        assert dict(b.scores) == pytest.approx(dict(s.scores))
        assert b.top_terms == s.top_terms
    assert tiny_model.predict([]) == []


def test_same_data_and_config_give_the_same_model() -> None:
    data = read_labelled(TINY)
    first, second = train(data, None, TINY_CONFIG), train(data, None, TINY_CONFIG)
    texts = ["a parcel text asked for my card details", "hooded men near the depot gates"]
    np.testing.assert_array_equal(
        first.pipeline.predict_proba(texts), second.pipeline.predict_proba(texts)
    )
    assert first.card.review == second.card.review


def test_normalisation_is_inside_the_pipeline(tiny_model: TriageModel) -> None:
    plain = tiny_model.predict_proba(["my email account was hacked"])
    noisy = tiny_model.predict_proba(["Share this article\nｍｙ email  account\u200b was hacked\n"])
    np.testing.assert_allclose(plain, noisy)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=5))
def test_any_text_gets_a_valid_distribution(tiny_model: TriageModel, texts: list[str]) -> None:
    for p in tiny_model.predict(texts):
        assert p.label in tiny_model.labels
        assert sum(s for _, s in p.scores) == pytest.approx(1.0)
        assert 0.0 <= p.confidence <= 1.0
