import pickle
import re
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_extraction.text import strip_accents_unicode as sklearn_strip_accents

from triage.core import features
from triage.core.features import CachedTfidfVectorizer
from triage.training.corpus import read_labelled

from .conftest import TINY

SETTINGS: list[dict[str, Any]] = [
    {"analyzer": "char_wb", "ngram_range": (2, 5), "strip_accents": "unicode"},
    {"analyzer": "char_wb", "ngram_range": (1, 3), "lowercase": False},
    {"analyzer": "word", "ngram_range": (1, 2), "strip_accents": "unicode"},
    {"analyzer": "char", "ngram_range": (2, 4)},
]

AWKWARD = [
    "",
    "   ",
    "a",
    "I",
    "Café  CAFÉ cafe\u0301\tnaïve\n\nrésumé",
    "bank\u00a0transfer\u2003to a  'safe'   account",
    "x y z xx yy zz xxx",
    "ransomware RANSOMWARE Ransomware ransom-ware",
    "🙂 emoji in a report 🙂 £500 €20 ₿",
    "tab\tseparated\rcarriage\x0bvertical\x0cform",
    "Ǆ ǅ ǆ ß ẞ İ ı ﬁ",
]


def fitted_pair(params: dict[str, Any]) -> tuple[TfidfVectorizer, CachedTfidfVectorizer]:
    texts = read_labelled(TINY).texts
    reference = TfidfVectorizer(min_df=1, sublinear_tf=True, dtype=np.float32, **params)
    fast = CachedTfidfVectorizer(min_df=1, sublinear_tf=True, dtype=np.float32, **params)
    return reference.fit(texts), fast.fit(texts)


def assert_identical(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert a.shape == b.shape and a.dtype == b.dtype and a.indices.dtype == b.indices.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)  # exact, not approximately


@pytest.mark.parametrize("params", SETTINGS, ids=lambda p: f"{p['analyzer']}{p['ngram_range']}")
def test_same_features_as_scikit_learn(params: dict[str, Any]) -> None:
    reference, fast = fitted_pair(params)
    assert fast.vocabulary_ == reference.vocabulary_  # fitting is scikit-learn's own
    texts = [*read_labelled(TINY).texts, *AWKWARD]
    assert_identical(reference.transform(texts), fast.transform(texts))
    # Second pass from the warm word cache, one document at a time and in a different order.
    for text in reversed(texts):
        assert_identical(reference.transform([text]), fast.transform([text]))


# Fitted once: Hypothesis calls the test below many times.
PAIRS = {p["analyzer"] + str(p.get("lowercase", True)): fitted_pair(p) for p in SETTINGS[:3]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=120), min_size=1, max_size=4))
def test_same_features_on_any_text(texts: list[str]) -> None:
    for params in SETTINGS[:3]:
        reference, fast = PAIRS[params["analyzer"] + str(params.get("lowercase", True))]
        assert_identical(reference.transform(texts), fast.transform(texts))


def test_the_cache_is_bounded_and_never_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, fast = fitted_pair(SETTINGS[0])
    monkeypatch.setattr(features, "CACHE_WORDS", 5)
    texts = read_labelled(TINY).texts[:20]
    assert_identical(reference.transform(texts), fast.transform(texts))
    assert fast.cached_words > 5  # one batch's words, all of them
    for text in texts:  # a full table starts again before the next batch
        assert_identical(reference.transform([text]), fast.transform([text]))
        assert 0 < fast.cached_words <= len(set(text.lower().split()))
    copy = pickle.loads(pickle.dumps(fast))
    assert "_features_by_word" not in copy.__dict__
    assert_identical(reference.transform(texts), copy.transform(texts))


def test_a_refit_starts_a_new_cache() -> None:
    fast = CachedTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3))
    fast.fit(["alpha beta", "gamma delta"])
    before = fast.transform(["alpha gamma"]).toarray()
    fast.fit(["alpha omega", "omega sigma"])  # a new vocabulary: indices mean other n-grams
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3))
    reference.fit(["alpha omega", "omega sigma"])
    assert_identical(reference.transform(["alpha gamma"]), fast.transform(["alpha gamma"]))
    assert before.shape != fast.transform(["alpha gamma"]).shape
    assert clone(fast).get_params() == fast.get_params()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_tokens_and_accents_as_scikit_learn_makes_them(text: str) -> None:
    # Any Unicode: combining marks, digits of other scripts, surrogates, separators.
    assert features.default_tokens(text) == re.findall(TfidfVectorizer().token_pattern, text)
    assert features.strip_accents_unicode(text) == sklearn_strip_accents(text)


@pytest.mark.parametrize("text", [*AWKWARD, "ﬁnancial ½ ² Ⅻ ٣٤ x_y __ a_ _b ǅx", "\ud800ab cd"])
def test_tokens_on_awkward_text(text: str) -> None:
    assert features.default_tokens(text) == re.findall(TfidfVectorizer().token_pattern, text)
    assert features.strip_accents_unicode(text) == sklearn_strip_accents(text)


def test_threads_sharing_one_vectorizer_get_scikit_learns_features() -> None:
    # A server without model processes scores on many threads with one model: every thread
    # adds new words to the shared word table while the others read it, and its arrays grow.
    reference, fast = fitted_pair(SETTINGS[0])
    words = [f"w{i}x{i * 7919 % 1000}" for i in range(6_000)]  # each new to the table
    batches = [[" ".join(words[k + j :: 97][:40]) for j in range(3)] for k in range(96)]
    results: dict[int, Any] = {}

    def work(k: int) -> None:
        results[k] = fast.transform(batches[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, batch in enumerate(batches):
        assert_identical(reference.transform(batch), results[k])
