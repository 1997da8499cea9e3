"""Live quality (`triage monitor` and the quality gauges) over a real decision record, on SQLite
and PostgreSQL: synthetic decisions and feedback in, figures checked against hand counts."""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from triage.cli import main
from triage.core.artifacts import read_card
from triage.monitor import drift
from triage.monitor.figures import QualityReport, VersionFigures, measure_quality
from triage.monitor.proportion import Proportion, wilson_interval
from triage.monitor.window import Window
from triage.rpc.quality_metrics import QualityGauges
from triage.store.database import Store, open_store
from triage.store.records import Decision, Feedback, ShadowDecision, new_id

from .stores import store_url_for

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)
BELOW = ("below_threshold",)
NO_EVIDENCE = ("no_evidence",)


def decision(
    version: str, label: str, confidence: float, at: datetime, reasons: tuple[str, ...] = ()
) -> Decision:
    return Decision(
        decision_id=new_id(at.timestamp()),
        report_id=f"r-{new_id()}",
        received_at=at,
        model_version=version,
        source="Classify",
        label=label,
        confidence=confidence,
        scores={label: confidence},
        needs_review=bool(reasons),
        reasons=reasons,
        caller="test",
        latency_ms=1.0,
    )


def batch(
    version: str,
    label: str,
    n: int,
    confidence: float,
    start: datetime,
    reasons: tuple[str, ...] = (),
    step: timedelta = timedelta(minutes=1),
) -> list[Decision]:
    return [decision(version, label, confidence, start + i * step, reasons) for i in range(n)]


def feedback(d: Decision, new_label: str, at: datetime | None = None) -> Feedback:
    return Feedback(
        feedback_id=new_id(),
        decision_id=d.decision_id,
        report_id=d.report_id,
        old_label=d.label,
        new_label=new_label,
        reviewer="reviewer-1",
        note="",
        created_at=at or d.received_at + timedelta(hours=2),
        source="rpc",
    )


def labelled(decisions: Sequence[Decision], labels: Sequence[str]) -> list[Feedback]:
    return [feedback(d, label) for d, label in zip(decisions, labels, strict=True)]


def in_time_zone(url: str, zone: str) -> str:
    """``url`` with PostgreSQL sessions in ``zone`` (SQLite has no session time zone)."""
    if not url.startswith("postgresql"):
        return url
    return f"{url}?options=-c%20timezone%3D{zone.replace('/', '%2F')}"


def version_of(report: QualityReport, name: str) -> VersionFigures:
    return next(v for v in report.versions if v.version == name)


# -- the record for the figures tests: three days of model v1, a few of a removed version ------


def fill_three_days(store: Store) -> None:
    """37 decisions of v1 over 1-3 March 2026 (UTC) plus two just outside, 5 of v0-gone.

    v1: 25 accepted (fraud 16, general 5, terrorism_concern 4), all reviewed, 21 confirmed by
    their latest feedback; 12 flagged (cybercrime 4 below threshold, general 6 with no evidence
    and below threshold, cybercrime 2 with no evidence), 10 reviewed, 4 confirmed.
    """
    last_second = DAY2 - timedelta(microseconds=1)
    fraud1 = batch("v1", "fraud", 10, 0.95, DAY1 + timedelta(hours=1))
    general1 = batch("v1", "general", 5, 0.85, last_second, step=-timedelta(seconds=1))
    fraud2 = batch("v1", "fraud", 6, 0.95, DAY2 + timedelta(hours=8))
    cyber2 = batch("v1", "cybercrime", 4, 0.45, DAY2, BELOW, step=timedelta(seconds=1))
    general3 = batch(
        "v1", "general", 6, 0.25, DAY3 + timedelta(hours=3), ("no_evidence", "below_threshold")
    )
    terror3 = batch("v1", "terrorism_concern", 4, 1.0, DAY3 + timedelta(hours=12))
    cyber3 = batch("v1", "cybercrime", 2, 0.5, DAY3 + timedelta(hours=20), NO_EVIDENCE)
    outside = [
        decision("v1", "fraud", 0.95, DAY1 - timedelta(microseconds=1)),
        decision("v1", "fraud", 0.95, DAY3 + timedelta(days=1)),
    ]
    gone = batch("v0-gone", "general", 5, 0.7, DAY2 + timedelta(hours=2))
    store.insert_decisions(
        [*fraud1, *general1, *fraud2, *cyber2, *general3, *terror3, *cyber3, *outside, *gone]
    )
    fraud = fraud1 + fraud2
    rows = labelled(fraud, ["fraud"] * 14 + ["cybercrime"] * 2)
    # Two confirmations overrule an earlier correction, one correction overrules an earlier
    # confirmation: only the latest row of a decision counts.
    rows += [feedback(d, "general", d.received_at + timedelta(hours=1)) for d in fraud[:2]]
    rows += labelled(general1, ["general"] * 4 + ["fraud"])
    rows.append(feedback(general1[4], "general", general1[4].received_at + timedelta(hours=1)))
    rows += labelled(terror3, ["terrorism_concern"] * 3 + ["general"])
    rows += labelled(cyber2, ["cybercrime", "cybercrime", "fraud", "fraud"])
    rows += labelled(general3, ["general"] * 2 + ["terrorism_concern"] * 4)
    rows.append(feedback(outside[0], "fraud"))
    store.insert_feedback(rows)


def test_wilson_interval_is_the_textbook_one() -> None:
    # By hand, for 21 of 25: p = 0.84, z = 1.959964, z^2 = 3.841459,
    # centre = (0.84 + 3.841459 / 50) / (1 + 3.841459 / 25) = 0.916829 / 1.153658 = 0.794715,
    # half = 1.959964 / 1.153658 * sqrt(0.84 * 0.16 / 25 + 3.841459 / 2500) = 0.141251.
    low, high = wilson_interval(21, 25)
    assert low == pytest.approx(0.794715 - 0.141251, abs=1e-5)
    assert high == pytest.approx(0.794715 + 0.141251, abs=1e-5)
    assert wilson_interval(0, 20) == (0.0, pytest.approx(0.161125, abs=1e-6))
    assert wilson_interval(20, 20) == (pytest.approx(0.838875, abs=1e-6), 1.0)
    assert not Proportion(19, 19).enough and Proportion(20, 20).enough


def test_psi_is_the_textbook_one_and_empty_bins_count_as_epsilon() -> None:
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5) = 0.141003 + 0.274887
    assert drift.population_stability_index([50, 50], [80, 20]) == pytest.approx(0.41589, 1e-4)
    assert drift.population_stability_index([10, 30], [1, 3]) == pytest.approx(0.0)
    empty_live_bin = (0.5 - drift.EPSILON) * math.log(0.5 / drift.EPSILON)
    assert drift.population_stability_index([50, 50], [0, 10]) == pytest.approx(
        empty_live_bin + 0.5 * math.log(2), 1e-6
    )
    assert drift.population_stability_index([0, 0], [1, 2]) is None


def test_figures_per_version_from_the_record(
    store: Store, store_url: str, models_dir: Path
) -> None:
    fill_three_days(store)
    # Days are UTC days whatever the database session's time zone.
    far_away = open_store(in_time_zone(store_url, "Pacific/Auckland"), create=False)
    try:
        report = measure_quality(far_away, models_dir, Window(DAY1, DAY3 + timedelta(days=1)))
    finally:
        far_away.close()

    assert [v.version for v in report.versions] == ["v0-gone", "v1"]
    v1 = version_of(report, "v1")
    assert v1.baseline.card is not None
    assert v1.decisions == 37
    assert v1.needs_review == 12
    assert v1.review_rate == pytest.approx(12 / 37)
    assert v1.reasons == {"below_threshold": 10, "no_evidence": 8}
    assert [(d.day, d.labels) for d in v1.days] == [
        ("2026-03-01", {"fraud": 10, "general": 5}),
        ("2026-03-02", {"cybercrime": 4, "fraud": 6}),
        ("2026-03-03", {"cybercrime": 2, "general": 6, "terrorism_concern": 4}),
    ]
    assert v1.labels == {"cybercrime": 6, "fraud": 16, "general": 11, "terrorism_concern": 4}
    # Bins are (low, high]: 0.25 in the third, 0.45 and 0.5 (an edge) the fifth, 0.85 the
    # ninth, 0.95 and 1.0 the last.
    assert v1.histogram == (0, 0, 6, 0, 6, 0, 0, 0, 5, 20)

    accepted = v1.accuracy.accepted
    assert (accepted.successes, accepted.n) == (21, 25)
    assert accepted.interval == pytest.approx((0.653464, 0.935965), abs=1e-6)
    assert (v1.accuracy.flagged.successes, v1.accuracy.flagged.n) == (4, 10)
    assert not v1.accuracy.flagged.enough
    assert (v1.accuracy.reviewed.successes, v1.accuracy.reviewed.n) == (25, 35)
    assert (v1.accuracy.corrected.successes, v1.accuracy.corrected.n) == (10, 35)

    assert v1.label_drift.baseline is not None and v1.label_drift.psi is not None
    assert v1.label_drift.status == drift.TOO_FEW  # 37 decisions: computed, not judged
    assert sum(v1.confidence_drift.live) == 37

    gone = version_of(report, "v0-gone")
    assert gone.baseline.card is None and "directory removed" in str(gone.baseline.problem)
    assert gone.decisions == 5 and gone.accuracy.accepted.n == 0
    assert gone.label_drift.status == drift.NO_BASELINE and gone.label_drift.psi is None
    assert gone.confidence_drift.status == drift.NO_BASELINE


def test_drift_is_nil_when_live_traffic_looks_like_cv_and_alerts_when_skewed(
    store: Store, models_dir: Path
) -> None:
    # Three times the model's cross-validation: its predicted labels (the confusion matrix's
    # columns) and its confidences (one in the middle of each reliability bin per prediction).
    cv = read_card(models_dir / "v1").training.metrics.cv
    predicted = {
        label: sum(row[j] for row in cv.confusion_matrix) for j, label in enumerate(cv.labels)
    }
    labels = [label for label, n in predicted.items() for _ in range(3 * n)]
    confidences = [(b.low + b.high) / 2 for b in cv.reliability for _ in range(3 * b.count)]
    assert len(labels) == len(confidences) >= drift.MIN_DRIFT_DECISIONS
    like_cv = [
        decision("v1", label, confidence, DAY1 + timedelta(seconds=i))
        for i, (label, confidence) in enumerate(zip(labels, confidences, strict=True))
    ]
    skewed = batch("v1", "fraud", 150, 0.99, DAY2, step=timedelta(seconds=1))
    store.insert_decisions(like_cv + skewed)

    calm = version_of(measure_quality(store, models_dir, Window(DAY1, DAY2)), "v1")
    assert calm.label_drift.psi == pytest.approx(0.0, abs=1e-9)
    assert calm.confidence_drift.psi == pytest.approx(0.0, abs=1e-9)
    assert calm.label_drift.status == calm.confidence_drift.status == drift.STABLE

    shifted = version_of(measure_quality(store, models_dir, Window(DAY2, DAY3)), "v1")
    assert shifted.label_drift.psi is not None and shifted.label_drift.psi > 0.2
    assert shifted.confidence_drift.psi is not None and shifted.confidence_drift.psi > 0.2
    assert shifted.label_drift.alert and shifted.confidence_drift.alert

    tolerant = measure_quality(store, models_dir, Window(DAY2, DAY3), psi_alert=1e6)
    assert version_of(tolerant, "v1").label_drift.status == drift.MODERATE


def run_monitor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["monitor", *args], env={})
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_monitor_prints_the_figures_as_json(
    store: Store, store_url: str, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_three_days(store)
    window = ("--since", "2026-03-01", "--until", "2026-03-03")
    code, out, err = run_monitor(
        capsys, "--store", store_url, "--models", str(models_dir), *window, "--json"
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["format"] == 1
    assert document["window"] == {
        "since": "2026-03-01T00:00:00+00:00",
        "until": "2026-03-04T00:00:00+00:00",
    }
    assert document["thresholds"]["psi_alert"] == 0.2
    assert document["plots"] == []
    v0, v1 = document["versions"]
    assert v0["version"] == "v0-gone" and v0["card"] is False and v0["card_problem"]
    assert v1["version"] == "v1" and v1["card"] is True
    assert (v1["decisions"], v1["needs_review"]) == (37, 12)
    assert v1["reasons"] == {"below_threshold": 10, "no_evidence": 8}
    assert v1["label_mix_by_day"][0] == {"day": "2026-03-01", "labels": {"fraud": 10, "general": 5}}
    assert v1["confidence_histogram"] == [0, 0, 6, 0, 6, 0, 0, 0, 5, 20]
    accepted = v1["accuracy"]["accepted"]
    assert (accepted["successes"], accepted["n"], accepted["enough"]) == (21, 25, True)
    assert accepted["share"] == pytest.approx(0.84)
    assert (accepted["low"], accepted["high"]) == pytest.approx((0.653464, 0.935965), abs=1e-6)
    assert v1["drift"]["label"]["status"] == "too_few_decisions"
    assert v1["drift"]["confidence"]["edges"][0] == 0.0
    assert "compare" not in document

    code, out, err = run_monitor(
        capsys, "--store", store_url, "--models", str(models_dir), *window, "--version", "v1"
    )
    assert code == 0, err
    assert "model v1" in out and "v0-gone" not in out
    assert "flagged        0.400 [95% CI 0.168-0.687] (n=10): not enough feedback" in out
    assert "accepted       0.840 [95% CI 0.653-0.936] (n=25)\n" in out
    assert "2026-03-02" in out and "2026-02-28" not in out


def test_monitor_compares_live_decisions_with_a_shadow_version(
    store: Store, store_url: str, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = batch("v1", "fraud", 20, 0.9, DAY1) + batch("v1", "general", 10, 0.9, DAY2)
    only_v3 = batch("v1", "general", 3, 0.9, DAY2)
    store.insert_decisions(live + only_v3)
    shadow_labels = ["cybercrime"] * 4 + ["fraud"] * 16 + ["fraud"] * 2 + ["general"] * 8
    store.insert_shadows(
        [
            ShadowDecision(d.decision_id, "v2", d.received_at, label, 0.8, {label: 0.8}, False, ())
            for d, label in zip(live, shadow_labels, strict=True)
        ]
        + [
            ShadowDecision(d.decision_id, "v3", d.received_at, "fraud", 0.8, {}, False, ())
            for d in only_v3
        ]
    )
    # Reviewers: the first 4 were cybercrime (shadow right), 11 fraud (both right), 5 general.
    store.insert_feedback(
        labelled(live[:20], ["cybercrime"] * 4 + ["fraud"] * 11 + ["general"] * 5)
    )

    code, out, err = run_monitor(
        capsys, "--store", store_url, "--models", str(models_dir), "--compare", "v2", "--json"
    )
    assert code == 0, err
    comparison = json.loads(out)["compare"]
    assert comparison["shadow_version"] == "v2"
    (against_v1,) = comparison["versions"]
    assert against_v1["live_version"] == "v1"
    assert (against_v1["agreement"]["successes"], against_v1["agreement"]["n"]) == (24, 30)
    assert against_v1["labels"] == ["cybercrime", "fraud", "general"]
    assert against_v1["confusion"] == [[0, 0, 0], [4, 16, 0], [0, 2, 8]]
    live_accuracy, shadow_accuracy = against_v1["live_accuracy"], against_v1["shadow_accuracy"]
    assert (live_accuracy["successes"], live_accuracy["n"]) == (11, 20)
    assert (shadow_accuracy["successes"], shadow_accuracy["n"]) == (15, 20)
    assert shadow_accuracy["low"] == pytest.approx(wilson_interval(15, 20)[0])

    code, out, _ = run_monitor(capsys, "--store", store_url, "--compare", "v9")
    assert code == 0 and "shadow v9: no shadow answers in this window" in out


def test_monitor_plots_are_png_files(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with store_url_for("sqlite", tmp_path) as url:
        store = open_store(url)
        try:
            fill_three_days(store)
        finally:
            store.close()
    plots = tmp_path / "plots"
    code, out, err = run_monitor(
        capsys, "--store", url, "--models", str(models_dir), "--plots", str(plots)
    )
    assert code == 0, err
    written = sorted(p.name for p in plots.iterdir())
    assert written == [
        "accuracy.png",
        "confidence_v0-gone.png",
        "confidence_v1.png",
        "label_mix_v0-gone.png",
        "label_mix_v1.png",
    ]
    for name in written:
        assert (plots / name).read_bytes().startswith(PNG_SIGNATURE)
        assert f"wrote {plots / name}" in out


def test_monitor_without_matplotlib_says_what_to_install(
    tmp_path: Path,
    models_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with store_url_for("sqlite", tmp_path) as url:
        open_store(url).close()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, _, err = run_monitor(capsys, "--store", url, "--plots", str(tmp_path / "plots"))
    assert code == 1
    assert "--plots needs matplotlib: pip install 'triage[plots]'" in err
    assert "Traceback" not in err


def test_monitor_refuses_a_missing_record_and_survives_a_broken_card(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "nowhere" / "triage.db"
    code, _, err = run_monitor(capsys, "--store", f"sqlite:///{absent}")
    assert code == 1 and "the file does not exist" in err
    assert not absent.exists()

    code, _, err = run_monitor(
        capsys, "--store", f"sqlite:///{absent}", "--since", "2026-03-02", "--until", "2026-03-01"
    )
    assert code == 1 and "--since must come before --until" in err

    with store_url_for("sqlite", tmp_path) as url:
        store = open_store(url)
        try:
            store.insert_decisions(batch("v1", "fraud", 3, 0.9, DAY1))
        finally:
            store.close()
    (models_dir / "v1" / "model.json").write_text("{not json", encoding="utf-8")
    code, out, err = run_monitor(capsys, "--store", url, "--models", str(models_dir), "--json")
    assert code == 0, err
    (v1,) = json.loads(out)["versions"]
    assert v1["card"] is False and "cannot read model card of v1" in v1["card_problem"]
    assert v1["decisions"] == 3


# -- the gauges ---------------------------------------------------------------------------------


def fill_recent(store: Store) -> list[Decision]:
    """40 decisions of v1 in the last day: 30 accepted, 27 of them confirmed by a reviewer; and
    5 of v2 with 2 reviewed."""
    now = datetime.now(UTC)
    accepted = batch("v1", "fraud", 30, 0.9, now - timedelta(hours=20))
    flagged = batch("v1", "general", 10, 0.4, now - timedelta(hours=10), BELOW)
    other = batch("v2", "general", 5, 0.8, now - timedelta(hours=5))
    store.insert_decisions(accepted + flagged + other)
    store.insert_feedback(
        labelled(accepted, ["fraud"] * 27 + ["general"] * 3)
        + labelled(other[:2], ["general", "general"])
    )
    return accepted


def test_gauges_export_the_figures_after_a_refresh(store: Store, models_dir: Path) -> None:
    fill_recent(store)
    registry = CollectorRegistry()
    gauges = QualityGauges(store, models_dir, registry, refresh_seconds=60)
    assert registry.get_sample_value("triage_decisions_recorded", {"version": "v1"}) is None
    assert gauges.refresh()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("triage_live_accuracy", version="v1") == pytest.approx(27 / 30)
    assert value("triage_live_accuracy_reviews", version="v1") == 30
    assert value("triage_review_rate", version="v1") == pytest.approx(10 / 40)
    assert value("triage_decisions_recorded", version="v1") == 40
    v1 = version_of(measure_quality(store, models_dir, Window.recent(timedelta(days=7))), "v1")
    assert value("triage_drift_psi", version="v1", kind="label") == pytest.approx(
        v1.label_drift.psi
    )
    assert value("triage_drift_psi", version="v1", kind="confidence") == pytest.approx(
        v1.confidence_drift.psi
    )
    # v2: no card (no baseline, no PSI) and too few reviews for an accuracy.
    assert value("triage_decisions_recorded", version="v2") == 5
    assert value("triage_live_accuracy_reviews", version="v2") == 2
    assert value("triage_live_accuracy", version="v2") is None
    assert value("triage_drift_psi", version="v2", kind="label") is None
    assert value("triage_live_quality_refreshed_timestamp_seconds") is not None


def test_gauges_keep_the_last_figures_while_the_store_fails_and_log_it_once(
    store: Store, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill_recent(store)
    registry = CollectorRegistry()
    gauges = QualityGauges(store, models_dir, registry)
    assert gauges.refresh()
    with store.connect() as connection:
        connection.execute(text("ALTER TABLE decisions RENAME TO decisions_away"))
    try:
        with caplog.at_level(logging.INFO, logger="triage.rpc.quality_metrics"):
            assert not gauges.refresh()
            assert not gauges.refresh()
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "not refreshed" in warnings[0].getMessage()
        assert registry.get_sample_value("triage_decisions_recorded", {"version": "v1"}) == 40
    finally:
        with store.connect() as connection:
            connection.execute(text("ALTER TABLE decisions_away RENAME TO decisions"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="triage.rpc.quality_metrics"):
        assert gauges.refresh()
    assert any("refreshed again" in r.getMessage() for r in caplog.records)


def test_gauges_refresh_in_the_background_until_stopped(store: Store, models_dir: Path) -> None:
    fill_recent(store)
    registry = CollectorRegistry()
    gauges = QualityGauges(store, models_dir, registry, refresh_seconds=0.05).start()
    try:
        deadline = time.monotonic() + 60
        while registry.get_sample_value("triage_decisions_recorded", {"version": "v1"}) is None:
            assert time.monotonic() < deadline, "the gauges were never refreshed"
            time.sleep(0.02)
        store.insert_decisions(batch("v1", "fraud", 2, 0.9, datetime.now(UTC)))
        while registry.get_sample_value("triage_decisions_recorded", {"version": "v1"}) != 42:
            assert time.monotonic() < deadline, "the gauges were not refreshed again"
            time.sleep(0.02)
    finally:
        gauges.stop()
    assert not any(t.name == "triage-quality-gauges" for t in threading.enumerate())
