"""A model directory written by an attacker (card hash updated) cannot run code anywhere."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import shlex
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import skops.io
from sklearn.dummy import DummyClassifier

from triage.cli import main
from triage.core.artifacts import CARD_FILE, CURRENT, load_artifact, read_card, resolve_current
from triage.core.card import ArtifactFile
from triage.core.errors import ModelLoadError
from triage.core.model import load_model, load_model_bytes
from triage.rpc.app import TriageServer
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import TINY, start_server

# pickle: a legacy card (no artifact.format) over a pickle whose loading runs a command.
# pickle-as-skops: the same pickle, its card claiming the skops format.
# skops-untrusted: a real skops file whose normaliser is a type that writes a file when made.
KINDS = ("pickle", "pickle-as-skops", "skops-untrusted")
# The files as an attacker writes them (literal names, and imports kept to what older triage
# had, so that these tests also run, and fail, against the code before skops).
PICKLE_FILE, SKOPS_FILE = "model.joblib", "model.skops"
ONE, TWO = ("--workers", "1", "--quiet"), ("--workers", "2", "--quiet")


class RunsCommandWhenUnpickled:
    """Unpickling this runs a shell command (the attack in the issue)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class WritesFileWhenMade:
    """skops makes an object by calling its class's ``__setstate__``: this one writes a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, str]) -> None:
        Path(state["marker"]).write_text("owned")
        self.__dict__.update(state)


def _model_bytes(kind: str, marker: Path, result: TrainResult) -> bytes:
    if kind.startswith("pickle"):
        return pickle.dumps(RunsCommandWhenUnpickled(marker))
    pipeline = copy.deepcopy(result.pipeline)
    pipeline.steps[0] = ("normalise", WritesFileWhenMade(marker))
    return skops.io.dumps(pipeline)


def _hostile(models_dir: Path, kind: str, marker: Path, result: TrainResult) -> str:
    """Write version ``evil-KIND`` beside v1: v1's card, the hostile file and its sha256."""
    version = f"evil-{kind}"
    target = models_dir / version
    target.mkdir()
    data = _model_bytes(kind, marker, result)
    card = json.loads((models_dir / "v1" / CARD_FILE).read_text())
    card["version"] = version
    sha256 = hashlib.sha256(data).hexdigest()
    if kind == "pickle":
        card["artifact"] = {"file": PICKLE_FILE, "sha256": sha256}
    else:
        card["artifact"] = {"file": SKOPS_FILE, "sha256": sha256, "format": "skops"}
    (target / card["artifact"]["file"]).write_bytes(data)
    (target / CARD_FILE).write_text(json.dumps(card))
    return version


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "owned"
    yield path
    assert not path.exists(), "a hostile artifact ran code"


def _point_current_at(models_dir: Path, version: str) -> None:
    (models_dir / ".switch").symlink_to(version)
    os.replace(models_dir / ".switch", models_dir / CURRENT)


def test_the_hostile_artifacts_really_run_code_when_loaded_naively(
    tmp_path: Path, tiny_result: TrainResult
) -> None:
    # The control: without the safe loader each of these does write the file, so the tests
    # below that say it never appears are testing something.
    for kind in KINDS:
        marker = tmp_path / f"owned-{kind}"
        data = _model_bytes(kind, marker, tiny_result)
        if kind.startswith("pickle"):
            pickle.loads(data)  # what joblib.load did with model.joblib
        else:
            skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
        assert marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_every_loader_refuses_a_hostile_artifact(
    models_dir: Path, kind: str, marker: Path, tiny_result: TrainResult
) -> None:
    version = _hostile(models_dir, kind, marker, tiny_result)
    expected = {
        "pickle": r"model evil-pickle: it is a pickle .*triage convert evil-pickle --trust-pickle",
        "pickle-as-skops": r"model evil-pickle-as-skops: it is not a skops file",
        "skops-untrusted": r"model evil-skops-untrusted: it holds types that a triage model "
        r"never contains \(tests\.test_hostile_artifacts\.WritesFileWhenMade\)",
    }[kind]
    for load in (load_model, load_artifact):
        with pytest.raises(ModelLoadError, match=expected):
            load(models_dir / version)
    # What a Dask worker does with the bytes shipped to it.
    card = read_card(models_dir / version)
    data = (models_dir / version / card.artifact.file).read_bytes()
    with pytest.raises(ModelLoadError, match=expected):
        load_model_bytes(card, data)


def test_a_skops_file_with_a_scikit_learn_type_no_triage_model_holds_is_refused(
    models_dir: Path, tiny_result: TrainResult
) -> None:
    # skops trusts every scikit-learn estimator; triage trusts only the ones its candidates use.
    pipeline = copy.deepcopy(tiny_result.pipeline)
    pipeline.steps[-1] = ("classifier", DummyClassifier())
    data = skops.io.dumps(pipeline)
    assert "sklearn.dummy.DummyClassifier" not in skops.io.get_untrusted_types(data=data)
    card = read_card(models_dir / "v1")
    card = replace(card, artifact=ArtifactFile(SKOPS_FILE, hashlib.sha256(data).hexdigest()))
    with pytest.raises(ModelLoadError, match=r"\(sklearn\.dummy\.DummyClassifier\)"):
        load_model_bytes(card, data)
    from triage.core.artifact_format import _schema, _untrusted_objects

    assert _untrusted_objects(_schema(data, "model x")) == {"sklearn.dummy.DummyClassifier"}


def test_a_function_smuggled_into_a_trusted_step_is_refused(
    models_dir: Path, tiny_result: TrainResult
) -> None:
    # Every type here is trusted, but the word vectoriser would call os.system on each text.
    pipeline = copy.deepcopy(tiny_result.pipeline)
    pipeline.named_steps["features"].transformer_list[0][1].preprocessor = os.system
    data = skops.io.dumps(pipeline)
    card = read_card(models_dir / "v1")
    card = replace(card, artifact=ArtifactFile(SKOPS_FILE, hashlib.sha256(data).hexdigest()))
    with pytest.raises(ModelLoadError, match=r"never contains \(posix\.system\)"):
        load_model_bytes(card, data)
    # triage's own walk of the file finds it without skops's audit (defence in depth).
    from triage.core.artifact_format import _schema, _untrusted_objects

    assert _untrusted_objects(_schema(data, "model x")) == {"posix.system"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_refuses_a_hostile_artifact(
    models_dir: Path,
    tmp_path: Path,
    kind: str,
    marker: Path,
    tiny_result: TrainResult,
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = _hostile(models_dir, kind, marker, tiny_result)
    model = str(models_dir / version)
    archive = tmp_path / "reports.jsonl"
    archive.write_text(json.dumps({"id": "r1", "text": "my card was cloned"}) + "\n")
    runs = [
        ["classify", "--model", model, "a stolen bike"],
        ["evaluate", "--model", model, "--data", str(TINY)],
        ["promote", version, "--models", str(models_dir)],
        ["score", str(archive), "--out", str(tmp_path / "o.jsonl"), "--model", model, *ONE],
    ]
    if kind == "skops-untrusted":  # its sha256 matches, so each worker process loads it
        runs.append(
            ["score", str(archive), "--out", str(tmp_path / "o2.jsonl"), "--model", model, *TWO]
        )
    for argv in runs:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "triage: error: " in err and "Traceback" not in err, (argv, err)
    assert resolve_current(models_dir) == (models_dir / "v1").resolve()


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "model-processes"])
def test_reload_model_refuses_a_hostile_artifact_and_keeps_serving(
    models_dir: Path,
    workers: int,
    marker: Path,
    tiny_result: TrainResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    versions = [_hostile(models_dir, kind, marker, tiny_result) for kind in KINDS]
    server: TriageServer = start_server(models_dir, workers=workers)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            for version in versions:
                _point_current_at(models_dir, version)
                with pytest.raises(grpc.RpcError) as refused:
                    stub.ReloadModel(pb.ReloadModelRequest(), timeout=30)
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                details = refused.value.details() or ""
                # Named by version; the server's paths stay in the server's log.
                assert version in details and str(models_dir) not in details, details
                answer = stub.Classify(pb.ClassifyRequest(text="my bike was stolen"), timeout=10)
                assert answer.model_version == "v1"
    finally:
        server.stop(grace=0)
    if workers == 0:  # the front process's log (model processes log to their own stderr)
        assert f"refused the model at {(models_dir / versions[-1]).resolve()}" in caplog.text
