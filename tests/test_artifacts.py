import io
import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io

from triage.cli import main
from triage.core.artifact_format import (
    TRUSTED_TYPES,
    _nodes,
    pipeline_from_bytes,
    pipeline_to_bytes,
)
from triage.core.artifacts import (
    CARD_FILE,
    CURRENT,
    LEGACY_MODEL_FILE,
    MODEL_FILE,
    list_versions,
    load_artifact,
    promote,
    read_card,
    resolve_current,
    verified_card,
    write_artifact,
)
from triage.core.card import SKOPS
from triage.core.errors import ModelLoadError
from triage.core.features import CachedTfidfVectorizer
from triage.core.legacy_artifacts import convert_legacy_artifact
from triage.core.model import load_model
from triage.training.candidates import CANDIDATES, get_candidate
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


def test_a_tampered_model_file_is_refused_before_loading(models_dir: Path) -> None:
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
    (models_dir / "v2" / MODEL_FILE).write_bytes(b"not a skops file")
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


def _legacy_models(tmp_path: Path) -> Path:
    # tests/data/legacy-models/v0 was written by the code of 2026-12-01: a joblib pickle whose
    # classes are named triage.normalise.* and triage.features.* (before the package split).
    import sklearn

    card = json.loads((LEGACY_MODELS / "v0" / CARD_FILE).read_text())
    if card["libraries"]["scikit-learn"] != sklearn.__version__:
        pytest.skip("the legacy artifact was pickled with another scikit-learn release")
    models = tmp_path / "models"
    shutil.copytree(LEGACY_MODELS, models)
    return models


def test_a_legacy_pickle_is_refused_with_the_command_that_converts_it(tmp_path: Path) -> None:
    models = _legacy_models(tmp_path)
    assert b"triage.normalise" in (models / "v0" / LEGACY_MODEL_FILE).read_bytes()
    for load in (load_model, load_artifact, verified_card):
        with pytest.raises(
            ModelLoadError, match=r"model v0: it is a pickle .*runs whatever code"
        ) as e:
            load(models / "v0")
        assert "triage convert v0 --trust-pickle" in str(e.value)
    with pytest.raises(ModelLoadError, match="it is a pickle"):
        promote(models, "v0")
    assert resolve_current(models) is None


def test_a_legacy_pickle_converts_only_on_explicit_trust(tmp_path: Path) -> None:
    models = _legacy_models(tmp_path)
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        convert_legacy_artifact(models, "v0", trust_pickle=False)
    assert list_versions(models) == ["v0"]
    path = convert_legacy_artifact(models, "v0", trust_pickle=True)
    assert path == models / "v0-skops" and list_versions(models) == ["v0", "v0-skops"]
    old, new = read_card(models / "v0"), read_card(path)
    assert new.training == old.training and new.version == "v0-skops"
    assert (new.artifact.file, new.artifact.format) == (MODEL_FILE, SKOPS)
    model = load_model(path)  # the safe loader, no module aliases needed
    (prediction,) = model.predict(["Someone rang pretending to be my bank and I paid them."])
    assert prediction.label in model.labels and prediction.model_version == "v0-skops"
    with pytest.raises(ModelLoadError, match="already a skops artifact"):
        convert_legacy_artifact(models, "v0-skops", trust_pickle=True)
    promote(models, "v0-skops")
    assert load_model(models / CURRENT).version == "v0-skops"


def test_the_convert_command_needs_trust_pickle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = _legacy_models(tmp_path)
    assert main(["convert", "v0", "--models", str(models)]) == 1
    assert "pass --trust-pickle if you trust" in capsys.readouterr().err
    assert list_versions(models) == ["v0"]
    assert main(["convert", "v0", "--trust-pickle", "--to", "v1", "--models", str(models)]) == 0
    assert "triage promote v1" in capsys.readouterr().out
    assert main(["promote", "v1", "--models", str(models)]) == 0
    assert load_model(models / CURRENT).version == "v1"


def test_promote_refuses_current_links_dot_names_and_paths(
    tmp_path: Path,
    models_dir: Path,
    tiny_result: TrainResult,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (models_dir / "alias").symlink_to("v1", target_is_directory=True)
    shutil.copytree(models_dir / "v1", models_dir / ".hidden")
    for name in (
        "current",
        "alias",
        ".hidden",
        "../models/v1",
        "v1/",
        "./v1",
        str(models_dir / "v1"),
        "",
    ):
        with pytest.raises(ModelLoadError, match=r"pointer|not a path or a link"):
            promote(models_dir, name)
        assert os.readlink(models_dir / CURRENT) == "v1"
    assert load_model(models_dir / CURRENT).version == "v1"
    assert main(["promote", "current", "--models", str(models_dir)]) == 1
    assert "'current' is the pointer that promotion moves" in capsys.readouterr().err
    assert os.readlink(models_dir / CURRENT) == "v1"
    fresh = tmp_path / "fresh"
    with pytest.raises(ModelLoadError, match="bad version name 'current'"):
        write_artifact(fresh, CURRENT, tiny_result.pipeline, tiny_result.card)
    assert not (fresh / CURRENT).exists()


def test_a_new_artifact_is_a_skops_file_named_on_its_card(models_dir: Path) -> None:
    card = json.loads((models_dir / "v1" / CARD_FILE).read_text())
    assert card["artifact"]["file"] == MODEL_FILE == "model.skops"
    assert card["artifact"]["format"] == "skops" and card["format"] == 1
    assert card["libraries"]["skops"]
    assert (models_dir / "v1" / MODEL_FILE).read_bytes()[:2] == b"PK"  # a zip, not a pickle
    assert not (models_dir / "v1" / LEGACY_MODEL_FILE).exists()


def _every_candidate_shape() -> list[tuple[str, str]]:
    shapes = [(name, "") for name in CANDIDATES]
    shapes += [(name, "isotonic") for name in CANDIDATES if name != "word_lr"]
    return shapes


@pytest.mark.parametrize(("candidate", "method"), _every_candidate_shape())
def test_every_candidate_saves_and_loads_with_only_trusted_types(
    candidate: str, method: str
) -> None:
    data = read_labelled(TINY)
    pipeline = get_candidate(candidate).build(0)
    if method:
        pipeline.set_params(classifier__method=method)
    pipeline.fit(data.texts, data.labels)
    saved = pipeline_to_bytes(pipeline)
    assert set(skops.io.get_untrusted_types(data=saved)) <= TRUSTED_TYPES
    loaded = pipeline_from_bytes(saved, "model test")
    assert np.array_equal(loaded.predict_proba(data.texts), pipeline.predict_proba(data.texts))


def test_a_vocabulary_is_saved_as_arrays_not_one_json_node_per_term() -> None:
    # skops writes a dict as two JSON nodes a term (~1 KB): that made the default model's file
    # 78 MB, 28 s to write and 3 s to load. Packed, the vocabulary is three arrays.
    vectorizer = CachedTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))
    texts = [*read_labelled(TINY).texts, "na\u00efve caf\u00e9 \U0001f600 \ud800"]
    vectorizer.fit(texts)
    assert len(vectorizer.vocabulary_) > 5_000
    saved = skops.io.dumps(vectorizer)
    with zipfile.ZipFile(io.BytesIO(saved)) as archive:
        nodes = sum(1 for _ in _nodes(json.loads(archive.read("schema.json"))))
    assert nodes < 100
    loaded = skops.io.loads(saved, trusted=sorted(TRUSTED_TYPES))
    assert loaded.vocabulary_ == vectorizer.vocabulary_
    assert (loaded.transform(texts) != vectorizer.transform(texts)).nnz == 0
