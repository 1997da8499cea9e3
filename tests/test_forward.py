import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import config_context
from sklearn.pipeline import Pipeline

from triage.core.forward import ForwardPass
from triage.core.model import TriageModel
from triage.core.pipeline import CLASSIFIER
from triage.training.candidates import CANDIDATES, get_candidate
from triage.training.corpus import read_labelled

from .conftest import TINY
from .test_features import AWKWARD


def fitted(name: str, **params: object) -> Pipeline:
    data = read_labelled(TINY)
    pipeline = get_candidate(name).build(0).set_params(**params)
    return pipeline.fit(data.texts, data.labels)


FITTED = {
    "svm-isotonic": fitted("word_char_svm", **{f"{CLASSIFIER}__method": "isotonic"}),
    "svm-sigmoid": fitted("word_char_svm", **{f"{CLASSIFIER}__method": "sigmoid"}),
    "word-svm": fitted("word_svm"),
    "svm-plain": fitted("word_char_svm_plain"),
}


def assert_same_as_scikit_learn(pipeline: Pipeline, texts: list[str]) -> None:
    forward = ForwardPass.of(pipeline)
    assert forward is not None
    ours = forward.features(texts)
    theirs = pipeline[:-1].transform(texts)
    assert type(ours) is type(theirs) and ours.dtype == theirs.dtype
    assert (ours != theirs).nnz == 0  # exactly the same features
    # ... stored the same way (row by row, columns in order), so sums over a row match too
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_array_equal(ours.data, theirs.data)
    np.testing.assert_array_equal(
        forward.predict_proba(ours), pipeline.named_steps[CLASSIFIER].predict_proba(theirs)
    )


@pytest.mark.parametrize("name", list(FITTED))
def test_the_forward_pass_gives_scikit_learns_numbers_exactly(name: str) -> None:
    pipeline = FITTED[name]
    texts = [*read_labelled(TINY).texts, *AWKWARD]
    assert_same_as_scikit_learn(pipeline, texts)
    for text in texts[::7]:  # one at a time, as the service scores a quiet caller
        assert_same_as_scikit_learn(pipeline, [text])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=200), min_size=1, max_size=3))
def test_the_forward_pass_matches_on_any_text(texts: list[str]) -> None:
    assert_same_as_scikit_learn(FITTED["svm-isotonic"], texts)
    assert_same_as_scikit_learn(FITTED["svm-sigmoid"], texts)


def test_other_shapes_run_through_scikit_learn() -> None:
    assert set(CANDIDATES) == {
        "word_lr",
        "word_char_svm",
        "word_char_svm_plain",
        "word_svm",
        "complement_nb",
    }
    # Uncalibrated, and calibrated around a model without a linear decision function.
    assert ForwardPass.of(fitted("word_lr")) is None
    assert ForwardPass.of(fitted("complement_nb")) is None


def test_the_served_model_uses_it(tiny_model: TriageModel) -> None:
    assert ForwardPass.of(tiny_model.pipeline) is not None  # the served shape is one it runs
    texts = read_labelled(TINY).texts[:10]
    proba = tiny_model.pipeline.predict_proba(texts)
    for row, prediction in zip(proba, tiny_model.predict(texts), strict=True):
        assert dict(prediction.scores) == dict(zip(tiny_model.labels, row.tolist(), strict=True))


@pytest.mark.parametrize("interface", ["sparray", "spmatrix"])
def test_the_features_come_back_as_scikit_learn_is_configured_to_give_them(interface: str) -> None:
    texts = read_labelled(TINY).texts[:5]
    with config_context(sparse_interface=interface):
        for pipeline in (FITTED["svm-sigmoid"], FITTED["word-svm"]):  # two blocks, and one
            assert_same_as_scikit_learn(pipeline, texts)
