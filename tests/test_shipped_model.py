"""The shipped corpus trains a model that meets the bar, with the default configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.core.artifacts import write_artifact
from triage.core.model import load_model
from triage.training.corpus import read_labelled
from triage.training.fairness import format_fairness, run_suite
from triage.training.train import TrainConfig, train

from .conftest import REPO

TRAIN = REPO / "training" / "data" / "train.jsonl"
TEST = REPO / "training" / "data" / "test.jsonl"


@pytest.mark.slow
def test_default_training_reaches_the_quality_bar(tmp_path: Path) -> None:
    data = read_labelled(TRAIN)
    test = read_labelled(TEST, known_labels=set(data.labels))
    result = train(data, test, TrainConfig())
    assert result.test is not None
    assert result.test.macro_f1 >= 0.90, result.test.per_class
    assert result.cv.macro_f1 >= 0.90
    assert result.test.ece < 0.08
    review = result.card.review
    assert review.cv_precision is not None
    assert review.cv_precision >= review.target_precision == 0.99
    assert 0.0 < review.cv_review_rate < 0.5  # the flag fires, but not on everything
    model = load_model(write_artifact(tmp_path, "shipped", result.pipeline, result.card))
    predictions = model.predict(test.texts)  # 380 texts, one vectorised call
    accepted = [p for p, gold in zip(predictions, test.labels, strict=True) if not p.needs_review]
    correct = sum(p.label == gold for p, gold in zip(predictions, test.labels, strict=True))
    assert correct / len(predictions) == pytest.approx(result.test.accuracy)
    assert len(accepted) > len(predictions) / 2
    # Identity swaps flip no label and stay within the gate's bounds (docs/model.md).
    fairness = run_suite(result.pipeline.predict_proba, result.card.labels, "shipped")
    assert fairness.passed, format_fairness(fairness)
