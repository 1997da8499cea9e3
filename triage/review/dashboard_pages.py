"""The dashboard page: how each model version did over the last days, as charts and tables.

``GET /dashboard?days=N&shadow=VERSION`` (any signed-in account): the figures of
:func:`triage.monitor.figures.measure_quality` over the last ``N`` UTC days (today included;
default 14): label mix per day, review rate and reasons, live accuracy with its 95% interval,
drift against cross-validation, and, when a shadow model answered in the window, its agreement
with the live one (``shadow`` picks which, by default the one that answered last).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triage.monitor import drift
from triage.monitor.figures import QualityReport, VersionFigures, measure_quality
from triage.monitor.proportion import MIN_N
from triage.monitor.report import format_drift, shown
from triage.monitor.shadow import ShadowAgreement
from triage.monitor.window import Window
from triage.review import charts
from triage.review.charts import Chart, Table
from triage.review.web import desk_of, needs_account, page
from triage.store import schema
from triage.store.database import Store
from triage.store.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_DAYS = 14
MAX_DAYS = 365
MAX_SHADOW_VERSIONS = 20
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 16
_DAYS = re.compile(r"[0-9]{1,3}")


class BadQuery(ValueError):
    """A query parameter the page cannot take; its message is shown on a 400 page."""


@dataclass(frozen=True)
class VersionView:
    """One model version's section of the page."""

    figures: VersionFigures
    anchor: str  # an id for the section, made from its position (never from the name)
    label_mix: Chart
    reasons: Chart
    accuracy: Chart
    psi: Chart | None  # None: no cross-validation baseline
    label_drift: Chart | None
    confidence_drift: Chart | None


@dataclass(frozen=True)
class ShadowView:
    agreement: ShadowAgreement
    chart: Chart
    confusion: Table


@dataclass(frozen=True)
class Dashboard:
    """Everything the page shows."""

    days: int
    since: datetime
    report: QualityReport
    overview: Chart | None  # accepted accuracy of every version; None without decisions
    versions: tuple[VersionView, ...]
    shadow_versions: tuple[str, ...]  # shadow models that answered in the window, latest first
    shadow: str | None
    shadows: tuple[ShadowView, ...]


def parse_days(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_DAYS
    if not _DAYS.fullmatch(raw) or not 1 <= int(raw) <= MAX_DAYS:
        raise BadQuery(f"days must be a whole number from 1 to {MAX_DAYS}")
    return int(raw)


def window_start(days: int, now: datetime) -> datetime:
    """Midnight UTC ``days - 1`` days before ``now``'s day: the window holds ``days`` whole
    UTC days, today included, so that every bar of the label mix is a whole day."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)


def shadow_versions(store: Store, since: datetime) -> list[str]:
    """The shadow versions that answered since ``since``, the one that answered last first
    (read from the shadow index alone: a shadow answer follows its decision within seconds)."""
    shadows = schema.shadow_decisions
    latest = func.max(shadows.c.scored_at)
    statement = (
        select(shadows.c.model_version, latest)
        .where(shadows.c.scored_at >= since)
        .group_by(shadows.c.model_version)
        .order_by(latest.desc(), shadows.c.model_version)
        .limit(MAX_SHADOW_VERSIONS)
    )
    with store.connect() as connection:
        return [str(version) for version, _ in connection.execute(statement)]


def record_mark(store: Store) -> tuple[object, ...]:
    """Changes whenever a decision, feedback row or shadow answer is added or removed: row
    counts and latest times, each read from an index (a few milliseconds at 100,000
    decisions, where the figures take hundreds)."""
    decisions, feedback, shadows = schema.decisions, schema.feedback, schema.shadow_decisions
    statement = select(
        select(func.count()).select_from(decisions).scalar_subquery(),
        select(func.max(decisions.c.received_at)).scalar_subquery(),
        select(func.count()).select_from(feedback).scalar_subquery(),
        select(func.max(feedback.c.created_at)).scalar_subquery(),
        select(func.count()).select_from(shadows).scalar_subquery(),
    )
    with store.connect() as connection:
        return tuple(connection.execute(statement).one())


class DashboardCache:
    """The dashboards built lately, reused while the record is unchanged (same
    :func:`record_mark`) and for at most ``ttl`` seconds, so that a model card added to the
    models folder shows within a minute."""

    def __init__(self, ttl: float = CACHE_SECONDS, size: int = CACHE_ENTRIES) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[tuple[object, ...], tuple[float, Dashboard]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> Dashboard | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > self.ttl:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[object, ...], dashboard: Dashboard) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), dashboard)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def cached_dashboard(
    cache: DashboardCache,
    store: Store,
    models_dir: Path | None,
    days: int,
    shadow: str | None,
    now: datetime,
) -> Dashboard:
    """:func:`build_dashboard`, or the same dashboard built earlier on an unchanged record."""
    key = (days, shadow, window_start(days, now), record_mark(store))
    found = cache.get(key)
    if found is None:
        found = build_dashboard(store, models_dir, days, shadow, now)
        cache.put(key, found)
    return found


def build_dashboard(
    store: Store, models_dir: Path | None, days: int, shadow: str | None, now: datetime
) -> Dashboard:
    """The page's figures and charts; raises :class:`BadQuery` for a shadow version that did
    not answer in the window and ``StoreError`` when the record cannot be read."""
    since = window_start(days, now)
    found = shadow_versions(store, since)
    if shadow is not None and shadow not in found:
        raise BadQuery("no shadow model of that version answered in this window")
    chosen = shadow if shadow is not None else (found[0] if found else None)
    report = measure_quality(store, models_dir, Window(since=since), compare=chosen)
    versions = tuple(_version_view(f, i, report.psi_alert) for i, f in enumerate(report.versions))
    overview = None
    if report.versions:
        overview = charts.intervals_chart(
            [(f.version, f.accuracy.accepted) for f in report.versions],
            "accepted-accuracy",
            "Live accuracy of accepted predictions per model version",
        )
    shadows: tuple[ShadowView, ...] = ()
    if report.comparison is not None:
        shadows = tuple(
            _shadow_view(a, report.comparison.shadow_version, i)
            for i, a in enumerate(report.comparison.versions)
        )
    return Dashboard(days, since, report, overview, versions, tuple(found), chosen, shadows)


def _version_view(figures: VersionFigures, index: int, alert: float) -> VersionView:
    anchor = f"version-{index + 1}"
    a = figures.accuracy
    has_baseline = figures.baseline.card is not None
    version = shown(figures.version)
    return VersionView(
        figures=figures,
        anchor=anchor,
        label_mix=charts.label_mix_chart(figures, f"{anchor}-mix"),
        reasons=charts.reasons_chart(figures, f"{anchor}-reasons"),
        accuracy=charts.intervals_chart(
            [
                ("accepted", a.accepted),
                ("sent to review", a.flagged),
                ("all reviewed", a.reviewed),
                ("corrected", a.corrected),
            ],
            f"{anchor}-accuracy",
            f"Live accuracy of model {version} against reviewer labels",
        ),
        psi=(
            charts.psi_chart(
                [("label mix", figures.label_drift), ("confidence", figures.confidence_drift)],
                f"{anchor}-psi",
                f"Drift of model {version} against cross-validation",
                drift.PSI_MODERATE,
                alert,
            )
            if has_baseline
            else None
        ),
        label_drift=(
            charts.drift_chart(figures.label_drift, f"{anchor}-label-drift", "label mix", alert)
            if has_baseline
            else None
        ),
        confidence_drift=(
            charts.drift_chart(
                figures.confidence_drift, f"{anchor}-confidence-drift", "confidence", alert
            )
            if has_baseline
            else None
        ),
    )


def _shadow_view(a: ShadowAgreement, shadow_version: str, index: int) -> ShadowView:
    live, candidate = shown(a.live_version), shown(shadow_version)
    chart = charts.intervals_chart(
        [
            ("agreement", a.agreement),
            (f"live {live} right", a.live_accuracy),
            (f"shadow {candidate} right", a.shadow_accuracy),
        ],
        f"shadow-{index + 1}",
        f"Shadow {candidate} against live {live}",
        what="answers",
    )
    confusion = Table(
        f"Labels of live {live} (rows) against shadow {candidate} (columns)",
        ("live \\ shadow", *(shown(label) for label in a.labels)),
        tuple(
            (shown(label), *(charts.count(n) for n in row))
            for label, row in zip(a.labels, a.confusion, strict=True)
        ),
    )
    return ShadowView(a, chart, confusion)


@needs_account()
async def dashboard(request: Request) -> Response:
    params = request.query_params
    raw_shadow = params.get("shadow") or None
    try:
        days = parse_days(params.get("days"))
        if raw_shadow is not None and len(raw_shadow) > schema.VERSION:
            raise BadQuery("no shadow model of that version answered in this window")
        desk = desk_of(request)
        view = await run_in_threadpool(
            cached_dashboard,
            _cache_of(request),
            desk.store,
            desk.models_dir,
            days,
            raw_shadow,
            datetime.now(UTC),
        )
    except BadQuery as err:
        return page(request, "dashboard.html", status_code=400, error=str(err), **_context())
    except StoreError as err:
        log.error("dashboard: cannot read the decision record: %s", err)
        return page(
            request,
            "dashboard.html",
            status_code=503,
            error="The decision record cannot be read just now; the log says why.",
            **_context(),
        )
    return page(request, "dashboard.html", view=view, **_context(days))


def _cache_of(request: Request) -> DashboardCache:
    """The application's dashboard cache (made on first use; a race makes two, harmlessly)."""
    cache = getattr(request.app.state, "dashboard_cache", None)
    if not isinstance(cache, DashboardCache):
        cache = DashboardCache()
        request.app.state.dashboard_cache = cache
    return cache


def _context(days: int = DEFAULT_DAYS) -> dict[str, Any]:
    return {
        "days": days,
        "max_days": MAX_DAYS,
        "min_feedback": MIN_N,
        "psi_moderate": drift.PSI_MODERATE,
        "status_words": drift.STATUS_WORDS,
        "proportion_text": charts.proportion_text,
        "percent": charts.percent,
        "count": charts.count,
        "drift_text": format_drift,
        "shown": shown,
    }


ROUTES: list[BaseRoute] = [Route("/dashboard", dashboard, methods=["GET"])]
