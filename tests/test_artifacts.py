import json
import random
from pathlib import Path

import pytest

from triage.core.artifacts import (
    CARD_FILE,
    MODEL_FILE,
    list_versions,
    load_artifact,
    promote,
    resolve_current,
    write_artifact,
)
from triage.core.errors import ModelLoadError
from triage.core.model import load_model
from triage.training.corpus import LabelledData, read_labelled
from triage.training.promotion import gate_and_promote
from triage.training.train import TrainResult, train

from .conftest import TINY, TINY_CONFIG


def test_card_records_provenance_and_metrics(models_dir: Path) -> None:
    card = json.loads((models_dir / "v1" / CARD_FILE).read_text())
    assert card["version"] == "v1"
    assert card["labels"] == ["cybercrime", "fraud", "general", "terrorism_concern"]
    assert len(card["artifact"]["sha256"]) == 64
    assert card["data"]["train"]["rows"] == 48 and len(card["data"]["train"]["sha256"]) == 64
    assert set(card["metrics"]["test"]) >= {
        "macro_f1",
        "accuracy",
        "per_class",
        "confusion_matrix",
        "ece",
    }
    assert 0 < card["review"]["threshold"] <= 1.0000000000000002
    assert card["libraries"]["scikit-learn"]


def test_a_tampered_model_file_is_refused_before_unpickling(models_dir: Path) -> None:
    model_file = models_dir / "v1" / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes() + b"\x00")
    with pytest.raises(ModelLoadError, match=r"sha256 .* does not match the model card"):
        load_model(models_dir / "current")


def test_a_different_scikit_learn_version_is_refused(models_dir: Path) -> None:
    card_path = models_dir / "v1" / CARD_FILE
    card = json.loads(card_path.read_text())
    card["libraries"]["scikit-learn"] = "0.0.1"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match=r"trained with scikit-learn 0\.0\.1"):
        load_artifact(models_dir / "v1")


def test_missing_or_broken_cards_are_refused(tmp_path: Path, models_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model card"):
        load_model(tmp_path)
    (models_dir / "v1" / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read model card"):
        load_model(models_dir / "v1")


def test_promote_and_roll_back(models_dir: Path, tiny_result: TrainResult) -> None:
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    assert list_versions(models_dir) == ["v1", "v2"]
    promote(models_dir, "v2")
    assert resolve_current(models_dir) == (models_dir / "v2").resolve()
    assert load_model(models_dir / "current").version == "v2"
    promote(models_dir, "v1")
    assert load_model(models_dir / "current").version == "v1"
    log = [json.loads(x) for x in (models_dir / "promotions.jsonl").read_text().splitlines()]
    assert [(e["version"], e["previous"]) for e in log][-2:] == [("v2", "v1"), ("v1", "v2")]
    with pytest.raises(ModelLoadError, match="no model version 'v9'"):
        promote(models_dir, "v9")
    with pytest.raises(ModelLoadError, match="already exists"):
        write_artifact(models_dir, "v1", tiny_result.pipeline, tiny_result.card)


def test_promoting_a_tampered_version_is_refused(
    models_dir: Path, tiny_result: TrainResult
) -> None:
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    (models_dir / "v2" / MODEL_FILE).write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError):
        promote(models_dir, "v2")
    assert resolve_current(models_dir) == (models_dir / "v1").resolve()


def _shuffled_labels(data: LabelledData) -> LabelledData:
    labels = data.labels
    random.Random(7).shuffle(labels)
    rows = tuple(
        r.__class__(r.row, r.id, r.text, lab, r.genre)
        for r, lab in zip(data.rows, labels, strict=True)
    )
    return LabelledData(data.path, rows, data.sha256)


def test_gate_keeps_a_worse_model_out_of_current(models_dir: Path) -> None:
    test = read_labelled(TINY)
    worse = train(_shuffled_labels(test), test, TINY_CONFIG)
    write_artifact(models_dir, "v2", worse.pipeline, worse.card)
    assert worse.test is not None
    decision = gate_and_promote(models_dir, "v2", worse.test.macro_f1, test, tolerance=0.01)
    assert not decision.promoted and "worse than" in decision.reason
    assert resolve_current(models_dir) == (models_dir / "v1").resolve()
    assert (models_dir / "v2" / MODEL_FILE).exists()  # the artifact is kept


def test_gate_promotes_an_equal_model(models_dir: Path, tiny_result: TrainResult) -> None:
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    assert tiny_result.test is not None
    decision = gate_and_promote(models_dir, "v2", tiny_result.test.macro_f1, read_labelled(TINY))
    assert decision.promoted
    assert resolve_current(models_dir) == (models_dir / "v2").resolve()


LEGACY_MODELS = Path(__file__).parent / "data" / "legacy-models"


def test_a_model_written_before_the_package_split_still_loads_and_predicts(tmp_path: Path) -> None:
    # tests/data/legacy-models/v0 was written by the code of 2026-12-01, whose pickle names the
    # pipeline's classes triage.normalise.* and triage.features.*.
    import sklearn

    card = json.loads((LEGACY_MODELS / "v0" / CARD_FILE).read_text())
    if card["libraries"]["scikit-learn"] != sklearn.__version__:
        pytest.skip("the legacy artifact was pickled with another scikit-learn release")
    assert b"triage.normalise" in (LEGACY_MODELS / "v0" / MODEL_FILE).read_bytes()
    model = load_model(LEGACY_MODELS / "v0")
    (prediction,) = model.predict(["Someone rang pretending to be my bank and I paid them."])
    assert model.version == "v0"
    assert prediction.label in model.labels
