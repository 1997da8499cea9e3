"""Convert a pickled (pre-skops) artifact to skops, on the operator's word that it is trusted."""

from __future__ import annotations

import hashlib
import importlib
import io
import shutil
import sys
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.pipeline import Pipeline

from triage.core.artifacts import (
    CURRENT,
    list_versions,
    load_artifact,
    read_card,
    write_artifact,
)
from triage.core.card import LEGACY_PICKLE, ModelCard
from triage.core.errors import ModelLoadError

# Artifacts pickled before the package was split into role subpackages name the pipeline's own
# classes by their old module paths; those names resolve to the modules that hold them now.
_MOVED_MODULES = {
    "triage.normalise": "triage.core.normalise",
    "triage.features": "triage.core.features",
}
# The converted pipeline must score these exactly as the pickled one did.
_CHECK_TEXTS = (
    "A suspicious bag was left at the station entrance.",
    "Someone rang pretending to be my bank and I paid them.",
    "Our office network was hit by ransomware overnight.",
    "A car was broken into on the high street last night.",
    "",
)


def converted_name(version: str) -> str:
    """The version a conversion writes when none is given: ``v0`` -> ``v0-skops``."""
    return f"{version}-skops"


def convert_legacy_artifact(
    models_dir: Path, version: str, new_version: str | None = None, *, trust_pickle: bool
) -> Path:
    """Load the pickled artifact ``models_dir/version`` and write it as a skops artifact
    ``new_version`` beside it (the same card, a new file and sha256); return its path.

    Unpickling runs whatever code the pickle holds, so this is the one place that does it, and
    only with ``trust_pickle`` (the operator's ``--trust-pickle``). The pickle must still match
    its card's sha256 and scikit-learn version, and the converted model must load through the
    safe loader and score the check texts exactly as the pickle does, or nothing is written.
    """
    if not trust_pickle:
        raise ModelLoadError(
            f"converting {version!r} loads a pickle, which runs any code it holds: pass "
            "--trust-pickle if you trust where the artifact came from"
        )
    known = list_versions(models_dir)
    if version == CURRENT or version not in known:
        raise ModelLoadError(
            f"no model version {version[:80]!r} in {models_dir} to convert "
            f"(have: {', '.join(known) or 'none'}); name its directory, not {CURRENT!r}"
        )
    source = models_dir / version
    card = read_card(source)
    if card.artifact.format != LEGACY_PICKLE:
        raise ModelLoadError(
            f"{version} is already a {card.artifact.format} artifact: nothing to convert"
        )
    pipeline = _unpickled(source, card, version)
    target = write_artifact(
        models_dir, new_version or converted_name(version), pipeline, card.training
    )
    try:
        converted, _ = load_artifact(target)
        texts = list(_CHECK_TEXTS)
        if not np.array_equal(converted.predict_proba(texts), pipeline.predict_proba(texts)):
            raise ModelLoadError(
                f"the converted {version} scores differently from the pickle: nothing written"
            )
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _unpickled(source: Path, card: ModelCard, version: str) -> Pipeline:
    model_file = source / card.artifact.file
    if model_file.parent.resolve() != source.resolve() or not model_file.is_file():
        raise ModelLoadError(f"{version}: its pickle {card.artifact.file[:80]!r} is missing")
    data = model_file.read_bytes()
    if hashlib.sha256(data).hexdigest() != card.artifact.sha256:
        raise ModelLoadError(
            f"{version}: its pickle does not match its card's sha256 (changed since it was "
            "written): not converting it"
        )
    trained_with = card.training.libraries.get("scikit-learn")
    if trained_with != sklearn.__version__:
        raise ModelLoadError(
            f"{version} was pickled by scikit-learn {trained_with}, installed is "
            f"{sklearn.__version__}: convert it where that version is installed"
        )
    for old, new in _MOVED_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
    loaded = joblib.load(io.BytesIO(data))  # the one unpickling in triage: trusted by the caller
    if not isinstance(loaded, Pipeline):
        raise ModelLoadError(f"{version} holds a {type(loaded).__name__}, not a Pipeline")
    return loaded
