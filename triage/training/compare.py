"""Compare the candidate pipelines on one training file: CV quality, calibration, speed."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

from triage.training.candidates import CANDIDATES
from triage.training.corpus import LabelledData
from triage.training.train import TrainConfig, train


def compare_candidates(
    data: LabelledData,
    config: TrainConfig,
    names: list[str] | None = None,
    repeats: int = 3,
    test: LabelledData | None = None,
) -> list[dict[str, Any]]:
    """Train every candidate as ``triage train`` would (grid search, out-of-fold metrics) and
    time batch prediction over the training texts (median of ``repeats`` runs). ``test`` is
    scored for information only: choosing by it would make it a second validation set."""
    rows = []
    for name in names or list(CANDIDATES):
        result = train(data, test, replace(config, candidate=name))
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            result.pipeline.predict_proba(data.texts)
            timings.append(time.perf_counter() - started)
        cv, card = result.cv, result.card
        best = [point for point in card.search if point.params == card.params]
        rows.append(
            {
                "candidate": name,
                "summary": CANDIDATES[name].summary,
                "params": card.params,
                "macro_f1": cv.macro_f1,
                "fold_std": best[0].std if best else None,
                "test_macro_f1": result.test.macro_f1 if result.test else None,
                "accuracy": cv.accuracy,
                "ece": cv.ece,
                "log_loss": cv.log_loss,
                "review_rate": card.review.cv_review_rate,
                "train_seconds": card.training_seconds,
                "predict_docs_per_s": len(data.texts) / statistics.median(timings),
            }
        )
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (as pasted into docs/model.md)."""
    head = (
        "| candidate | CV macro-F1 (fold std) | CV accuracy | CV ECE | CV log-loss "
        "| CV review rate | test macro-F1 | train s (incl. search) | predict docs/s "
        "| chosen params |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        params = ", ".join(f"{k.split('__', 1)[-1]}={v}" for k, v in r["params"].items())
        lines.append(
            f"| {r['candidate']} | {r['macro_f1']:.3f} ({_num(r['fold_std'])}) "
            f"| {r['accuracy']:.3f} | {r['ece']:.3f} | {r['log_loss']:.3f} "
            f"| {r['review_rate']:.1%} | {_num(r['test_macro_f1'])} | {r['train_seconds']:.0f} "
            f"| {r['predict_docs_per_s']:,.0f} | {params or 'defaults'} |"
        )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
