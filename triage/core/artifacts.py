"""Own ``models/``: write versioned artifacts with their card, verify before loading, promote."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sklearn
from sklearn.pipeline import Pipeline

from triage.core.artifact_format import pipeline_from_bytes, pipeline_to_bytes
from triage.core.card import LEGACY_PICKLE, SKOPS, ArtifactFile, ModelCard, TrainingRecord
from triage.core.card_markdown import MARKDOWN_CARD_FILE, render_card
from triage.core.errors import InvalidRecord, ModelLoadError
from triage.core.pipeline import CLASSIFIER, FEATURES, NORMALISE

log = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
LEGACY_MODEL_FILE = "model.joblib"  # written before skops; loaded only by `triage convert`
CARD_FILE = "model.json"
CURRENT = "current"
PROMOTIONS_LOG = "promotions.jsonl"
STEPS = (NORMALISE, FEATURES, CLASSIFIER)
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_version(now: datetime | None = None) -> str:
    """A sortable version name from the UTC time, e.g. ``20261121-093000``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def write_artifact(
    models_dir: Path, version: str, pipeline: Pipeline, training: TrainingRecord
) -> Path:
    """Write ``models_dir/version/`` (pipeline, card, and the card for people) atomically and
    return its path.

    The card holds ``training`` with the version and the sha256 of the pipeline's skops file;
    the directory only appears under its final name once both files are complete.
    """
    if not _VERSION.match(version) or version == CURRENT:
        raise ModelLoadError(
            f"bad version name {version!r}: use letters, digits, '.', '_', '-' (not {CURRENT!r})"
        )
    target = models_dir / version
    if target.exists() or target.is_symlink():
        raise ModelLoadError(f"{target} already exists: choose another version")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=models_dir))
    try:
        model_bytes = pipeline_to_bytes(pipeline)
        (staging / MODEL_FILE).write_bytes(model_bytes)
        artifact = ArtifactFile(
            file=MODEL_FILE, sha256=hashlib.sha256(model_bytes).hexdigest(), format=SKOPS
        )
        card = ModelCard(version=version, training=training, artifact=artifact)
        (staging / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        (staging / MARKDOWN_CARD_FILE).write_text(render_card(card), encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_card(path: Path) -> ModelCard:
    """Read and check the card of the artifact at ``path`` (a version dir or ``current``).

    Errors name the version (the directory's name), not the path: they reach gRPC callers of
    ReloadModel. The path is logged here instead."""
    path = Path(path)
    name = version_name(path)
    try:
        return ModelCard.from_json((path / CARD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = f"no model card ({CARD_FILE}) for model {name}: is it a model directory?"
    except InvalidRecord as err:
        problem = f"model card of {name}: {err}"
    except OSError as err:
        problem = f"cannot read model card of {name}: {err.strerror}"
    except ValueError as err:  # not JSON, or not UTF-8
        problem = f"cannot read model card of {name}: {err}"
    raise _refused(path, problem)


def load_artifact(path: Path) -> tuple[Pipeline, ModelCard]:
    """Verify the artifact at ``path`` against its card, then load it without running code.

    The file is read once: the bytes whose sha256 is checked are the bytes loaded. Its format
    must be skops (see :mod:`triage.core.artifact_format`); a legacy pickle is refused with the
    command that converts it.
    """
    path = Path(path)
    card, model_bytes = _verified(path)
    try:
        return _loaded(card, model_bytes, f"model {version_name(path)}"), card
    except ModelLoadError as err:
        raise _refused(path, str(err)) from None


def verified_card(path: Path) -> ModelCard:
    """The card of the artifact at ``path`` after checking the artifact against it, without
    loading it (for a process that hands the loading to workers)."""
    return _verified(Path(path))[0]


def load_artifact_bytes(card: ModelCard, model_bytes: bytes) -> tuple[Pipeline, ModelCard]:
    """:func:`load_artifact` for an artifact shipped as bytes with its card (e.g. to Dask
    workers)."""
    name = f"model {card.version}"
    verify_artifact(card, hashlib.sha256(model_bytes).hexdigest(), name)
    return _loaded(card, model_bytes, name), card


def verify_artifact(card: ModelCard, actual_sha256: str, name: str) -> None:
    """Refuse an artifact that is a pickle, or whose bytes or scikit-learn version do not
    match its card."""
    _check_card(card, name, card.version)
    expected = card.artifact.sha256
    if actual_sha256 != expected:
        raise ModelLoadError(
            f"refusing to load {name}: its sha256 {actual_sha256[:12]}... does not match the "
            f"model card's {expected[:12]}... (the file was changed or corrupted)"
        )


def _check_card(card: ModelCard, name: str, version: str) -> None:
    """Refuse a card whose artifact this triage must not or cannot load, before reading it
    (``version``: what `triage convert` would be given for it)."""
    artifact_format = card.artifact.format
    if artifact_format == LEGACY_PICKLE:
        raise ModelLoadError(
            f"refusing to load {name}: it is a pickle ({card.artifact.file}, written before "
            "triage saved models with skops), and loading a pickle runs whatever code it holds. "
            f"If you trust where it came from, convert it with `triage convert {version[:80]} "
            "--trust-pickle` and promote the version that writes"
        )
    if artifact_format != SKOPS:
        raise ModelLoadError(
            f"refusing to load {name}: its artifact format {artifact_format[:40]!r} is unknown "
            "to this triage; upgrade triage to load it"
        )
    trained_with = card.training.libraries.get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ModelLoadError(
            f"refusing to load {name}: trained with scikit-learn {trained_with}, "
            f"installed is {sklearn.__version__}; retrain it or install that version"
        )


def version_name(path: Path) -> str:
    """What errors call the artifact at ``path``: the name of the version directory it is (or
    that ``current`` points to), never its path on this machine."""
    return Path(path).resolve().name or "(root)"


def _verified(path: Path) -> tuple[ModelCard, bytes]:
    card = read_card(path)
    version = version_name(path)
    name = f"model {version}"
    try:
        _check_card(card, name, version)  # a pickle is refused before its bytes are even read
        model_file = path / card.artifact.file
        if model_file.parent.resolve() != path.resolve() or not model_file.is_file():
            raise ModelLoadError(
                f"refusing to load {name}: its model file {card.artifact.file[:80]!r} is missing "
                "or not in its directory"
            )
        model_bytes = model_file.read_bytes()
        verify_artifact(card, hashlib.sha256(model_bytes).hexdigest(), name)
    except OSError as err:
        raise _refused(path, f"cannot read {name}: {err.strerror}") from None
    except ModelLoadError as err:
        raise _refused(path, str(err)) from None
    return card, model_bytes


def _loaded(card: ModelCard, model_bytes: bytes, name: str) -> Pipeline:
    pipeline = pipeline_from_bytes(model_bytes, name)
    return _checked_pipeline(pipeline, card, name)


def _refused(path: Path, problem: str) -> ModelLoadError:
    # The caller may be a remote client (ReloadModel): the error names the version, and the
    # path, which only the operator needs, goes to this machine's log. (The caller reports the
    # error itself; repeating it here would print it twice.)
    log.warning("refused the model at %s", path)
    return ModelLoadError(problem)


def _checked_pipeline(pipeline: Any, card: ModelCard, name: str) -> Pipeline:
    if not isinstance(pipeline, Pipeline):
        raise ModelLoadError(f"{name} holds a {type(pipeline).__name__}, not a Pipeline")
    try:
        steps = tuple(step for step, _ in pipeline.steps)
        classes = tuple(str(c) for c in pipeline.classes_)
    except (AttributeError, TypeError, ValueError):  # trusted types, nonsense state
        steps, classes = (), ()
    if steps != STEPS:
        raise ModelLoadError(f"{name} is not a triage pipeline (steps {list(STEPS)})")
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

    ``version`` must be a version directory of ``models_dir`` itself: not ``current`` (which
    would then point at itself), nor a symlink, a dot name or a path. The artifact is verified
    and loaded first (without running code), so ``current`` never points at a model that
    would be refused. Every switch is appended to ``promotions.jsonl``.
    """
    known = list_versions(models_dir)
    if version == CURRENT:
        raise ModelLoadError(
            f"{CURRENT!r} is the pointer that promotion moves, not a version: name the version "
            f"to make current (have: {', '.join(known) or 'none'})"
        )
    if version not in known:
        raise ModelLoadError(
            f"no model version {version[:80]!r} in {models_dir} (have: {', '.join(known) or 'none'}"
            "); a version is the name of a directory there, not a path or a link"
        )
    target = models_dir / version
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
    with (models_dir / PROMOTIONS_LOG).open("a", encoding="utf-8") as log_file:
        log_file.write(json.dumps(entry) + "\n")
    return target
