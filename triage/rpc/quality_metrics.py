"""Live quality as Prometheus gauges, per model version, for dashboards.

The figures are those of ``triage monitor`` (:mod:`triage.monitor.figures`) over a recent
window (default the last 7 days), recomputed by a background thread every ``refresh_seconds``
(default 60). A scrape only reads the last figures: it never waits on the database. When the
store cannot be read the last figures stay exported and the failure is logged once (and its
end once); ``triage_live_quality_refreshed_timestamp_seconds`` tells how old they are.

Exported, each labelled ``version``:

- ``triage_live_accuracy``: the share of accepted predictions (``needs_review`` false) whose
  reviewer label is the model's; only once ``MIN_N`` (20) such decisions have feedback;
- ``triage_live_accuracy_reviews``: how many accepted decisions that share rests on;
- ``triage_review_rate``: the share of decisions flagged ``needs_review``;
- ``triage_drift_psi{kind="label"|"confidence"}``: the population stability index against the
  model's cross-validation (> 0.2: significant shift; see :mod:`triage.monitor.drift`);
  absent for a version without a model card under ``models_dir``;
- ``triage_decisions_recorded``: decisions in the window.

The figures are the shared record's, not this replica's: replicas over one PostgreSQL store
export the same values (aggregate them with ``max``, not ``sum``).

The collector registers itself with the server's registry (a plain ``CollectorRegistry`` in the
front process, which sees every call); it needs no multi-process mode because it holds no
per-process counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from triage.monitor.drift import PSI_ALERT
from triage.monitor.figures import VersionFigures, measure_quality
from triage.monitor.window import Window
from triage.store.database import Store

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 60.0
DEFAULT_WINDOW = timedelta(days=7)
STOP_SECONDS = 30.0  # a refresh caught in a slow query is left to finish on its own after this


class QualityGauges(Collector):
    """Gauges of live quality from ``store`` (cards from ``models_dir``), registered with
    ``registry``. Call :meth:`start` to refresh in the background, :meth:`stop` to end it."""

    def __init__(
        self,
        store: Store,
        models_dir: Path | None,
        registry: CollectorRegistry,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        window: timedelta = DEFAULT_WINDOW,
        psi_alert: float = PSI_ALERT,
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError("refresh_seconds must be positive")
        self.store = store
        self.models_dir = models_dir
        self.refresh_seconds = refresh_seconds
        self.window = window
        self.psi_alert = psi_alert
        self._figures: tuple[VersionFigures, ...] = ()
        self._refreshed_at: float | None = None
        self._lock = threading.Lock()
        self._failing = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        registry.register(self)

    # -- computing ----------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Recompute the figures now, on the calling thread; False (the last figures kept) when
        the store could not be read."""
        try:
            report = measure_quality(
                self.store,
                self.models_dir,
                Window.recent(self.window),
                psi_alert=self.psi_alert,
            )
        except Exception as err:  # the thread must outlive any failure; the log says which
            if not self._failing:
                self._failing = True
                log.warning(
                    "live quality gauges not refreshed (the last figures stay exported until "
                    "the store answers again): %s: %s",
                    type(err).__name__,
                    err,
                )
            return False
        with self._lock:
            self._figures = report.versions
            self._refreshed_at = time.time()
        if self._failing:
            self._failing = False
            log.info("live quality gauges refreshed again")
        return True

    def start(self) -> QualityGauges:
        """Refresh now and then every ``refresh_seconds`` in a daemon thread."""
        if self._thread is not None:
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="triage-quality-gauges", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(STOP_SECONDS)
        if thread.is_alive():
            log.warning("live quality gauges: a refresh is still running; left to finish")

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.refresh()
            self._stopping.wait(self.refresh_seconds)

    # -- exporting ----------------------------------------------------------------------------

    def describe(self) -> list[GaugeMetricFamily]:
        return list(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            figures, refreshed_at = self._figures, self._refreshed_at
        (accuracy, reviews, review_rate, psi, decisions, refreshed) = _families()
        for v in figures:
            accepted = v.accuracy.accepted
            if accepted.enough and accepted.share is not None:
                accuracy.add_metric([v.version], accepted.share)
            reviews.add_metric([v.version], accepted.n)
            if v.review_rate is not None:
                review_rate.add_metric([v.version], v.review_rate)
            for drift in (v.label_drift, v.confidence_drift):
                if drift.psi is not None:
                    psi.add_metric([v.version, drift.kind], drift.psi)
            decisions.add_metric([v.version], v.decisions)
        if refreshed_at is not None:
            refreshed.add_metric([], refreshed_at)
        yield from (accuracy, reviews, review_rate, psi, decisions, refreshed)


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "triage_live_accuracy",
            "Share of accepted predictions whose reviewer label is the model's (latest feedback "
            "per decision; shown from 20 reviewed decisions), over the recent window.",
            labels=["version"],
        ),
        GaugeMetricFamily(
            "triage_live_accuracy_reviews",
            "Accepted decisions with reviewer feedback that triage_live_accuracy rests on.",
            labels=["version"],
        ),
        GaugeMetricFamily(
            "triage_review_rate",
            "Share of decisions flagged needs_review, over the recent window.",
            labels=["version"],
        ),
        GaugeMetricFamily(
            "triage_drift_psi",
            "Population stability index of the label mix or confidence against the model's "
            "cross-validation (> 0.2: significant shift).",
            labels=["version", "kind"],
        ),
        GaugeMetricFamily(
            "triage_decisions_recorded",
            "Decisions on record in the recent window.",
            labels=["version"],
        ),
        GaugeMetricFamily(
            "triage_live_quality_refreshed_timestamp_seconds",
            "When the live quality gauges were last computed (Unix time).",
        ),
    )
