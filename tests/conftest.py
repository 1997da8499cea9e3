"""Shared fixtures: a real pipeline trained once on the tiny hand-written corpus."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from triage.core.artifacts import CURRENT, promote, write_artifact
from triage.core.model import TriageModel, load_model
from triage.rpc.app import ServeConfig, TriageServer
from triage.store.database import Store, open_store
from triage.training.corpus import read_labelled
from triage.training.train import TrainConfig, TrainResult, train

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.jsonl"
REPO = Path(__file__).resolve().parent.parent

# Fast and deterministic: the tiny corpus has 12 rows per label. The served shape without the
# identity placeholders: on 48 rows cross-validation is near chance (macro-F1 about 0.4) and,
# with them, no confidence buys a review threshold at all, so every answer would need review
# and the tests of answers that do not could not run. The placeholders are tested with this
# corpus in tests/test_identity.py, test_forward.py and test_fairness.py, and the shipped model
# that has them in tests/test_shipped_model.py.
TINY_CONFIG = TrainConfig(candidate="word_char_svm_plain", folds=3, seed=0, n_jobs=1, search=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() configures logging onto the stderr pytest captured for that test; put it back so
    # later tests do not log into a closed stream.
    saved = []
    for logger in (logging.getLogger(), logging.getLogger("triage.access")):
        saved.append(
            (logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled)
        )
    yield
    for logger, handlers, level, propagate, disabled in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture(scope="session")
def tiny_result() -> TrainResult:
    data = read_labelled(TINY)
    return train(data, data, TINY_CONFIG)


@pytest.fixture(scope="session")
def _models_template(tmp_path_factory: pytest.TempPathFactory, tiny_result: TrainResult) -> Path:
    models = tmp_path_factory.mktemp("models-template")
    write_artifact(models, "v1", tiny_result.pipeline, tiny_result.card)
    promote(models, "v1")
    return models


@pytest.fixture
def models_dir(tmp_path: Path, _models_template: Path) -> Path:
    """A fresh models/ directory per test, holding version v1 promoted to current."""
    target = tmp_path / "models"
    shutil.copytree(_models_template, target, symlinks=True)
    return target


def start_server(models_dir: Path, **overrides: object) -> TriageServer:
    """A started server on port 0 over ``models_dir/current``, no file watching."""
    settings: dict[str, object] = {
        "model_path": models_dir / CURRENT,
        "port": 0,
        "watch_seconds": 0,
    }
    settings.update(overrides)
    return TriageServer(ServeConfig(**settings)).start()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_model(_models_template: Path) -> TriageModel:
    return load_model(_models_template / "current")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty decision record on each backend: an SQLite file, a fresh PostgreSQL database."""
    from tests.stores import store_url_for

    with store_url_for(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """That decision record, open (closed after the test)."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
