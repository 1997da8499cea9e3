import json

import numpy as np
import pytest

from triage.core.errors import InvalidRecord
from triage.core.evaluation import Evaluation, ReviewOutcome
from triage.training.metrics import (
    REVIEW_EVERYTHING,
    choose_review_threshold,
    evaluate,
    expected_calibration_error,
)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    confidence = np.array([0.8] * 10)
    correct = np.array([True] * 8 + [False] * 2)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)
    assert expected_calibration_error(confidence, np.ones(10, bool)) == pytest.approx(0.2)


def test_threshold_is_the_lowest_that_reaches_the_precision() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, True, False, True, False])
    assert choose_review_threshold(confidence, correct, 1.0) == 0.9
    assert choose_review_threshold(confidence, correct, 0.8) == 0.7
    assert choose_review_threshold(confidence, np.zeros(6, bool), 0.5) == REVIEW_EVERYTHING


def test_threshold_never_splits_tied_confidences() -> None:
    confidence = np.array([0.9, 0.9, 0.5])
    correct = np.array([True, False, False])
    # Accepting one of the tied 0.9s would reach precision 1.0; ties go together instead.
    assert choose_review_threshold(confidence, correct, 1.0) == REVIEW_EVERYTHING


def test_evaluate_reports_every_figure() -> None:
    labels = ["a", "b"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    ev = evaluate(["a", "b", "b", "b"], proba, labels, review_threshold=0.65)
    assert ev.n == 4 and ev.accuracy == 0.75
    assert ev.confusion_matrix == ((1, 0), (1, 2))
    b = ev.per_class["b"]
    assert (b.precision, b.support) == (1.0, 3)
    assert b.recall == pytest.approx(2 / 3) and b.f1 == pytest.approx(0.8)
    assert ev.review == ReviewOutcome(threshold=0.65, rate=0.25, accepted_precision=1.0)
    assert sum(bin_.count for bin_ in ev.reliability) == 4


def test_an_evaluation_survives_a_json_round_trip() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    reviewed = evaluate(["a", "b", "b", "b"], proba, ["a", "b"], review_threshold=0.95)
    plain = evaluate(["a", "b", "b", "b"], proba, ["a", "b"])
    assert reviewed.review is not None and reviewed.review.accepted_precision is None
    assert plain.review is None and "review_rate" not in plain.to_dict()
    for ev in (reviewed, plain):
        text = json.dumps(ev.to_dict())
        assert Evaluation.from_dict(json.loads(text)) == ev
        assert json.dumps(Evaluation.from_dict(json.loads(text)).to_dict()) == text


def test_an_evaluation_with_a_mistyped_field_is_refused_by_name() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    document = evaluate(["a", "b"], proba, ["a", "b"]).to_dict()
    document["per_class"]["b"]["support"] = "3"
    with pytest.raises(InvalidRecord, match=r"'per_class\.b\.support' must be an integer"):
        Evaluation.from_dict(document)
