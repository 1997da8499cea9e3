"""The cross-validation baseline of a model version, read from its card under ``models/``.

Versions come from the decision record, which outlives model directories: a version whose
directory was removed (or whose card cannot be read) is still reported, without a baseline, and
the reason says why. Only names that :func:`list_versions` finds are looked up, so a version
string in the record never becomes a path of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from triage.core.artifacts import CARD_FILE, list_versions, read_card
from triage.core.card import ModelCard
from triage.core.errors import ModelLoadError


@dataclass(frozen=True)
class Baseline:
    """A version's card, or why there is none (``card`` None, ``problem`` set)."""

    version: str
    card: ModelCard | None
    problem: str | None = None


def read_baselines(models_dir: Path | None, versions: list[str]) -> dict[str, Baseline]:
    """The baseline of each of ``versions`` from ``models_dir`` (None: no models directory
    given, so no baselines)."""
    if models_dir is None:
        return {v: Baseline(v, None, "no models directory given") for v in versions}
    present = set(list_versions(models_dir))
    baselines = {}
    for version in versions:
        if version not in present:
            baselines[version] = Baseline(
                version, None, f"no {CARD_FILE} for it in {models_dir} (directory removed?)"
            )
            continue
        try:
            baselines[version] = Baseline(version, read_card(models_dir / version))
        except ModelLoadError as err:
            baselines[version] = Baseline(version, None, str(err))
    return baselines
