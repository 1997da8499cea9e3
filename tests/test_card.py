"""The model card as a typed record: old cards load, cards round-trip, bad cards are named."""

import copy
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triage.core.artifacts import CARD_FILE, CURRENT, LEGACY_MODEL_FILE, MODEL_FILE, read_card
from triage.core.card import CARD_FORMAT, LEGACY_PICKLE, SKOPS, ModelCard
from triage.core.card_markdown import MARKDOWN_CARD_FILE, render_card
from triage.core.errors import InvalidRecord, ModelLoadError
from triage.core.model import load_model, load_model_bytes
from triage.training.train import TrainResult

LEGACY_CARD = Path(__file__).parent / "data" / "legacy-models" / "v0" / CARD_FILE


def test_a_card_written_before_the_typed_records_loads_with_its_fields() -> None:
    card = read_card(LEGACY_CARD.parent)
    assert card.version == "v0" and card.created == "2026-12-01T13:55:31+00:00"
    assert card.labels == ("cybercrime", "fraud", "general", "terrorism_concern")
    assert card.review_threshold == 0.8199679788327444
    assert card.artifact.file == LEGACY_MODEL_FILE and card.artifact.sha256.startswith("f322bf6c")
    assert card.artifact.format == LEGACY_PICKLE  # a card without the field describes a pickle
    training = card.training
    assert (training.candidate, training.seed, training.cv_folds) == ("word_char_svm", 0, 3)
    assert training.params == {} and training.search == ()
    assert training.review.target_precision == 0.99 and training.review.cv_precision == 1.0
    assert training.data.train.rows == 48 and training.data.train.genres == {"short_note": 48}
    assert training.data.test is not None and training.data.test.labels["fraud"] == 12
    assert training.libraries["scikit-learn"] == "1.9.1"
    cv, test = training.metrics.cv, training.metrics.test
    assert cv.n == 48 and cv.per_class["fraud"].recall == 0.5833333333333334
    assert cv.confusion_matrix[0] == (6, 0, 1, 5) and cv.reliability[1].count == 9
    assert test is not None and test.macro_f1 == 1.0
    assert test.review is not None and test.review.rate == 0.08333333333333337
    # Writing it again gives the very bytes the old code wrote.
    assert card.to_json() == LEGACY_CARD.read_text(encoding="utf-8")


def test_a_written_card_reads_back_equal(models_dir: Path, tiny_result: TrainResult) -> None:
    card = read_card(models_dir / "v1")
    assert card.training == tiny_result.card
    assert card.artifact.format == SKOPS
    assert ModelCard.from_json(card.to_json()) == card
    assert pickle.loads(pickle.dumps(card)) == card  # as it travels to Dask workers
    model_bytes = (models_dir / "v1" / MODEL_FILE).read_bytes()
    assert load_model_bytes(card, model_bytes).card == card


def test_the_card_for_people_is_written_beside_the_model(
    models_dir: Path, tiny_result: TrainResult
) -> None:
    card = read_card(models_dir / "v1")
    text = (models_dir / "v1" / MARKDOWN_CARD_FILE).read_text(encoding="utf-8")
    assert text == render_card(card)
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Evaluation",
        "## Fairness",
        "## Limitations",
        "## Responsible use",
    ]
    cv = tiny_result.card.metrics.cv
    assert f"# Model card: triage {card.version}" in text
    assert f"(n={cv.n}): macro-F1 {cv.macro_f1:.3f}" in text
    assert card.artifact.sha256 in text and "Never use a score as evidence" in text
    for label, scores in cv.per_class.items():
        assert f"| {label} | {scores.precision:.3f} | {scores.recall:.3f} |" in text


def _leaves(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path


_MISSING = object()


def _replaced(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``document`` with the field at ``path`` set to ``value`` (or deleted)."""
    changed = copy.deepcopy(document)
    keys: list[Any] = [
        int(part[1:-1]) if part.startswith("[") else part
        for part in path.replace("[", ".[").split(".")
    ]
    target: Any = changed
    for key in keys[:-1]:
        target = target[key]
    if value is _MISSING:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return changed


def test_every_mistyped_field_is_refused_by_its_name() -> None:
    document = json.loads(LEGACY_CARD.read_text(encoding="utf-8"))
    paths = list(_leaves(document))
    assert len(paths) > 150 and "metrics.cv.reliability[2].count" in paths
    for path in paths:
        # No field of a card holds an object where a scalar is: {} is wrong everywhere.
        with pytest.raises(InvalidRecord) as refused:
            ModelCard.from_dict(_replaced(document, path, {}))
        assert refused.value.field == path


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format", CARD_FORMAT + 1, r"'format' is 2, but this triage reads format 1: upgrade"),
        ("format", "1", r"'format' must be an integer, not str '1'"),
        ("labels", "fraud", r"'labels' must be a list, not str 'fraud'"),
        ("review.threshold", "high", r"'review\.threshold' must be a number, not str 'high'"),
        ("seed", True, r"'seed' must be an integer, not bool True"),
        ("metrics", None, r"'metrics' must be a JSON object, not NoneType None"),
        ("artifact.sha256", _MISSING, r"'artifact\.sha256' is missing"),
        ("metrics.test.per_class.fraud", _MISSING, r"'metrics\.test\.per_class\.fraud' is missing"),
    ],
)
def test_a_bad_card_is_refused_naming_the_version_and_field(
    models_dir: Path, path: str, value: Any, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    card_path = models_dir / "v1" / CARD_FILE
    document = json.loads(card_path.read_text(encoding="utf-8"))
    card_path.write_text(json.dumps(_replaced(document, path, value)), encoding="utf-8")
    for load in (read_card, load_model):
        # The message can reach a remote caller (ReloadModel): the version, never the path;
        # the path is in this machine's log.
        with pytest.raises(ModelLoadError, match=r"^model card of v1: ") as refused:
            load(models_dir / CURRENT)
        assert str(models_dir) not in str(refused.value)
        assert f"refused the model at {models_dir / CURRENT}\n" in caplog.text
    with pytest.raises(ModelLoadError, match=rf": field {message}"):
        read_card(models_dir / "v1")


def test_a_card_that_is_not_an_object_is_refused(models_dir: Path) -> None:
    (models_dir / "v1" / CARD_FILE).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"field '\(the document\)' must be a JSON object"):
        read_card(models_dir / "v1")
