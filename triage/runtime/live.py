"""The model now serving, replaced atomically by a verified, warmed model on reload."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from triage.core.artifacts import ModelCard
from triage.core.errors import ModelLoadError, ModelUnavailable
from triage.core.model import TriageModel, load_model
from triage.core.scoring import Outcome, Report, accept_all, score_reports
from triage.runtime.model_watch import ModelWatch

log = logging.getLogger(__name__)

# Warm-up texts touch every step once, so the first real call pays no lazy start-up cost.
WARMUP_TEXTS = (
    "A suspicious bag was left at the station entrance.",
    "Someone rang pretending to be my bank and I paid them.",
    "Our office network was hit by ransomware overnight.",
    "A car was broken into on the high street last night.",
    # Not English: builds the language detector (~1 s, once per process) before serving.
    "Ktoś ukradł mi rower sprzed sklepu wczoraj wieczorem.",
)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: the version before and after, and whether the model changed."""

    previous_version: str | None
    model_version: str
    changed: bool


class LiveModel:
    """Holds the serving model for one model path (normally ``models/current``).

    Readers take :attr:`current` once per call and use that object to the end, so a swap never
    changes the model under a call in flight; the swap itself is one reference assignment.
    """

    lanes = 1  # one in-process model: batches run in the calling thread
    quiet_lane: int | None = None  # its one lane already runs in this process
    restarts = 0  # no model processes to restart

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._model: TriageModel | None = None
        self._source: tuple[Path, str] | None = None  # (resolved dir, artifact sha256)
        self._reload_lock = threading.Lock()
        self._watch = ModelWatch(self.path)

    @property
    def current(self) -> TriageModel:
        model = self._model
        if model is None:
            raise ModelUnavailable("no model is loaded yet; retry shortly")
        return model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def serving(self) -> bool:
        """Whether it can score: once loaded, always (it runs in this process)."""
        return self._model is not None

    @property
    def refusing(self) -> bool:
        """Whether the model path leads to a model that was refused (the old one serves)."""
        return self._watch.refusing

    @property
    def card(self) -> ModelCard:
        return self.current.card

    def score(self, lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]:
        """Score validated reports in one model call; returns the version that scored them."""
        model = self.current
        return model.version, score_reports(model, reports, accept_all)

    def close(self) -> None:
        """Nothing to release: the model lives in this process."""

    def reload(self) -> ReloadResult:
        """Load, verify and warm whatever ``path`` points to now, then swap it in.

        Raises :class:`~triage.core.errors.ModelLoadError` (and keeps the old model serving) if the
        new artifact fails verification. Does nothing if the path still holds the same model.
        """
        with self._reload_lock:
            previous = self._model
            try:
                resolved = self._watch.locate()
                if previous is not None and self._source == (resolved, _sha(previous.card)):
                    self._watch.accepted()
                    return ReloadResult(previous.version, previous.version, changed=False)
                candidate = load_model(resolved)
            except ModelLoadError:
                self._watch.refused()  # the watcher leaves it alone until it changes
                raise
            candidate.predict(list(WARMUP_TEXTS))
            self._watch.accepted()
            self._model = candidate
            self._source = (resolved, _sha(candidate.card))
            log.info(
                "model %s now serving (was %s)",
                candidate.version,
                previous.version if previous else "none",
            )
            return ReloadResult(
                previous.version if previous else None, candidate.version, changed=True
            )

    def changed_on_disk(self) -> bool:
        """Whether ``path`` now leads somewhere else than the serving model came from (and
        not to a model already refused)."""
        source = self._source
        return self._watch.changed(source[0] if source is not None else None)


def _sha(card: ModelCard) -> str:
    return card.artifact.sha256
