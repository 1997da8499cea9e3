"""Own ``models/``: write versioned artifacts with their card, verify before loading, promote."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import sklearn
from sklearn.pipeline import Pipeline

from triage.core.card import ArtifactFile, ModelCard, TrainingRecord
from triage.core.errors import InvalidRecord, ModelLoadError

MODEL_FILE = "model.joblib"
CARD_FILE = "model.json"
CURRENT = "current"
PROMOTIONS_LOG = "promotions.jsonl"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Artifacts pickled before the package was split into role subpackages name the pipeline's own
# classes by their old module paths; those names resolve to the modules that hold them now.
_MOVED_MODULES = {
    "triage.normalise": "triage.core.normalise",
    "triage.features": "triage.core.features",
}


def new_version(now: datetime | None = None) -> str:
    """A sortable version name from the UTC time, e.g. ``20261121-093000``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def write_artifact(
    models_dir: Path, version: str, pipeline: Pipeline, training: TrainingRecord
) -> Path:
    """Write ``models_dir/version/`` (pipeline + card) atomically and return its path.

    The card holds ``training`` with the version and the sha256 of the pickled pipeline; the
    directory only appears under its final name once both files are complete.
    """
    if not _VERSION.match(version):
        raise ModelLoadError(f"bad version name {version!r}: use letters, digits, '.', '_', '-'")
    target = models_dir / version
    if target.exists():
        raise ModelLoadError(f"{target} already exists: choose another version")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=models_dir))
    try:
        joblib.dump(pipeline, staging / MODEL_FILE)
        artifact = ArtifactFile(file=MODEL_FILE, sha256=_sha256(staging / MODEL_FILE))
        card = ModelCard(version=version, training=training, artifact=artifact)
        (staging / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_card(path: Path) -> ModelCard:
    """Read and check the card of the artifact at ``path`` (a version dir or ``current``)."""
    card_path = Path(path) / CARD_FILE
    try:
        return ModelCard.from_json(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"no model card at {card_path}: is {path} a model directory?"
        ) from None
    except InvalidRecord as err:
        raise ModelLoadError(f"model card {card_path}: {err}") from None
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read model card {card_path}: {err}") from None


def load_artifact(path: Path, mmap: bool = False) -> tuple[Pipeline, ModelCard]:
    """Verify the artifact at ``path`` and only then unpickle it.

    A pickle runs code when loaded, so the file's sha256 must match the card and the card's
    scikit-learn version must match the installed one before ``joblib.load`` is called.
    ``mmap`` maps the pickle's arrays read-only from the file instead of copying them, so that
    several processes serving one model share its weights through the page cache.
    """
    card = verified_card(Path(path))
    model_file = Path(path) / card.artifact.file
    _resolve_moved_modules()
    loaded = joblib.load(model_file, mmap_mode="r" if mmap else None)
    return _checked_pipeline(loaded, card, str(model_file)), card


def verified_card(path: Path) -> ModelCard:
    """The card of the artifact at ``path`` after checking the artifact against it, without
    unpickling (for a process that hands the loading to workers)."""
    path = Path(path)
    card = read_card(path)
    model_file = path / card.artifact.file
    if model_file.parent.resolve() != path.resolve() or not model_file.is_file():
        raise ModelLoadError(f"model file {model_file} is missing or outside {path}")
    verify_artifact(card, _sha256(model_file), str(model_file))
    return card


def load_artifact_bytes(card: ModelCard, model_bytes: bytes) -> tuple[Pipeline, ModelCard]:
    """:func:`load_artifact` for an artifact shipped as bytes with its card (e.g. to Dask
    workers)."""
    name = f"model {card.version}"
    verify_artifact(card, hashlib.sha256(model_bytes).hexdigest(), name)
    _resolve_moved_modules()
    return _checked_pipeline(joblib.load(io.BytesIO(model_bytes)), card, name), card


def verify_artifact(card: ModelCard, actual_sha256: str, name: str) -> None:
    """Refuse an artifact whose bytes or scikit-learn version do not match its card."""
    expected = card.artifact.sha256
    if actual_sha256 != expected:
        raise ModelLoadError(
            f"refusing to load {name}: its sha256 {actual_sha256[:12]}... does not match the "
            f"model card's {expected[:12]}... (the file was changed or corrupted)"
        )
    trained_with = card.training.libraries.get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ModelLoadError(
            f"refusing to load {name}: trained with scikit-learn {trained_with}, "
            f"installed is {sklearn.__version__}; retrain it or install that version"
        )


def _checked_pipeline(pipeline: Any, card: ModelCard, name: str) -> Pipeline:
    if not isinstance(pipeline, Pipeline):
        raise ModelLoadError(f"{name} holds a {type(pipeline).__name__}, not a Pipeline")
    classes = tuple(str(c) for c in pipeline.classes_)
    if classes != card.labels:
        raise ModelLoadError(f"{name}: classes {list(classes)} differ from the card's labels")
    return pipeline


def resolve_current(models_dir: Path) -> Path | None:
    """The version directory ``models_dir/current`` points to, or None if nothing is promoted."""
    link = models_dir / CURRENT
    return link.resolve() if link.exists() else None


def list_versions(models_dir: Path) -> list[str]:
    """Version names under ``models_dir`` that hold a model card, oldest first."""
    if not models_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in models_dir.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and not p.name.startswith(".")
        and (p / CARD_FILE).is_file()
    )


def promote(models_dir: Path, version: str, reason: str = "") -> Path:
    """Point ``models_dir/current`` at ``version`` atomically (promotion or rollback).

    The artifact is verified first, so ``current`` never points at a model that would be
    refused. Every switch is appended to ``promotions.jsonl``.
    """
    target = models_dir / version
    if not _VERSION.match(version) or not target.is_dir():
        known = ", ".join(list_versions(models_dir)) or "none"
        raise ModelLoadError(f"no model version {version!r} in {models_dir} (have: {known})")
    load_artifact(target)
    previous = resolve_current(models_dir)
    tmp_link = models_dir / f".{CURRENT}.{os.getpid()}.tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(version, target_is_directory=True)  # relative: the tree can move
    os.replace(tmp_link, models_dir / CURRENT)  # rename(2) is atomic: readers see old or new
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": version,
        "previous": previous.name if previous else None,
        "reason": reason,
    }
    with (models_dir / PROMOTIONS_LOG).open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    return target


def _resolve_moved_modules() -> None:
    for old, new in _MOVED_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
