"""The server's watch on models/current: it survives any bad target and logs a refusal once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from triage.core.artifacts import CURRENT, MODEL_FILE, write_artifact
from triage.rpc.app import TriageServer
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import start_server

WATCH = 0.05


def _until(condition: Callable[[], bool], seconds: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.02)


def _point_current(models_dir: Path, target: str) -> None:
    (models_dir / ".switch").symlink_to(target)
    os.replace(models_dir / ".switch", models_dir / CURRENT)


def _serving_version(server: TriageServer) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        info = pb_grpc.TriageServiceStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
        version: str = info.version
        return version


def _sample(server: TriageServer, name: str, labels: dict[str, str] | None = None) -> float | None:
    return server.metrics.registry.get_sample_value(name, labels or {})


def test_the_watcher_survives_a_current_pointing_at_itself_and_takes_the_next_promotion(
    models_dir: Path, tiny_result: TrainResult, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(models_dir, watch_seconds=WATCH)
    try:
        _point_current(models_dir, CURRENT)  # what `triage promote current` once did
        _until(
            lambda: _sample(server, "triage_model_reloads_total", {"outcome": "failure"}) == 1,
            what="the watcher looking at the loop",
        )
        assert _serving_version(server) == "v1"
        write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
        _point_current(models_dir, "v2")
        _until(lambda: _serving_version(server) == "v2", what="the next promotion taken")
    finally:
        server.stop(grace=0)
    assert not [r for r in caplog.records if r.exc_info], "the watcher raised"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_refused_model_is_logged_once_and_noted_until_current_changes(
    models_dir: Path, tiny_result: TrainResult, caplog: pytest.LogCaptureFixture, workers: int
) -> None:
    server = start_server(models_dir, watch_seconds=WATCH, workers=workers)
    failures = ("triage_model_reloads_total", {"outcome": "failure"})
    try:
        write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
        (models_dir / "v2" / MODEL_FILE).write_bytes(b"tampered")
        _point_current(models_dir, "v2")
        _until(lambda: _sample(server, *failures) == 1, what="the refusal")
        time.sleep(20 * WATCH)  # twenty more looks at the same refused target
        assert _sample(server, *failures) == 1
        refusals = [r for r in caplog.records if "reload refused" in r.getMessage()]
        assert len(refusals) == 1, [r.getMessage() for r in refusals]
        assert not server.engine.changed_on_disk()  # the watcher leaves it alone now
        assert _sample(server, "triage_model_refused") == 1
        assert _serving_version(server) == "v1"
        write_artifact(models_dir, "v3", tiny_result.pipeline, tiny_result.card)
        _point_current(models_dir, "v3")
        _until(lambda: _serving_version(server) == "v3", what="the next promotion taken")
        assert _sample(server, "triage_model_refused") == 0
    finally:
        server.stop(grace=0)
