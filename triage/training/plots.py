"""Draw evaluations as PNGs: confusion matrix, reliability diagram, fairness spreads (needs
matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triage.core.errors import TriageError
from triage.core.evaluation import Evaluation
from triage.training.fairness import TERRORISM, FairnessReport


def _pyplot(out_dir: Path) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise TriageError("--plots needs matplotlib: pip install 'triage[plots]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    return plt


def write_plots(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """Write ``confusion_matrix.png`` and ``reliability.png`` into ``out_dir``; return paths."""
    plt = _pyplot(out_dir)
    labels = evaluation.labels
    matrix = evaluation.confusion_matrix

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > peak / 2 else "black",
            )
    ax.set_title(f"Confusion matrix (n={evaluation.n}, macro-F1 {evaluation.macro_f1:.3f})")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    confusion_path = out_dir / "confusion_matrix.png"
    fig.savefig(confusion_path, dpi=120)
    plt.close(fig)

    bins = evaluation.reliability
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.bar(
        [b.low for b in bins],
        [b.accuracy for b in bins],
        width=[b.high - b.low for b in bins],
        align="edge",
        alpha=0.6,
        edgecolor="black",
        label="accuracy in bin",
    )
    ax.plot(
        [b.confidence for b in bins],
        [b.accuracy for b in bins],
        "o-",
        color="darkred",
        label="mean confidence vs accuracy",
    )
    if evaluation.review is not None:
        ax.axvline(evaluation.review.threshold, color="orange", label="review threshold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top label)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {evaluation.ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    reliability_path = out_dir / "reliability.png"
    fig.savefig(reliability_path, dpi=120)
    plt.close(fig)
    return [confusion_path, reliability_path]


def write_review_curve(
    curve: Sequence[tuple[float, float, float]],
    threshold: float | None,
    out_dir: Path,
    target: float | None = None,
) -> Path:
    """Write ``review_curve.png``: precision of the accepted answers against the share sent to
    review, one point per threshold an operator could choose; the model's own marked."""
    plt = _pyplot(out_dir)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    rates = [rate for _, rate, _ in curve]
    precisions = [p for _, _, p in curve]
    ax.plot(rates, precisions, "-", color="navy", label="precision of accepted answers")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", label=f"target {target:.2f}")
    if threshold is not None and curve:
        accepted = [(r, p) for t, r, p in curve if t >= threshold]
        if accepted:
            rate, precision = accepted[-1]
            ax.plot([rate], [precision], "o", color="darkorange", markersize=9)
            ax.annotate(
                f"threshold {threshold:.3f}: {rate:.1%} reviewed, precision {precision:.3f}",
                (rate, precision),
                textcoords="offset points",
                xytext=(10, -18),
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(max(0.0, min(precisions, default=0.0) - 0.02), 1.005)
    ax.set_xlabel("share of reports sent to review")
    ax.set_ylabel("precision of the answers not reviewed")
    ax.set_title("Precision / review rate: choosing the review threshold")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = out_dir / "review_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_fairness_plots(report: FairnessReport, out_dir: Path) -> list[Path]:
    """Write ``fairness_spread.png`` (P(terrorism) spread across swaps per template and group,
    flips in red, the bound dashed) into ``out_dir``; return its path."""
    plt = _pyplot(out_dir)
    cases = sorted(report.cases, key=lambda c: (c.group, c.template))
    fig, ax = plt.subplots(figsize=(7.5, 0.25 * len(cases) + 1.5))
    ax.barh(
        range(len(cases)),
        [c.terrorism_spread for c in cases],
        color=["darkred" if c.flipped else "steelblue" for c in cases],
        edgecolor="black",
    )
    ax.set_yticks(range(len(cases)), [f"{c.group}: {c.template}" for c in cases])
    ax.invert_yaxis()
    ax.axvline(report.bounds.max_spread, color="orange", linestyle="--", label="bound")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"spread of P({TERRORISM}) across swaps (red: the label flips)")
    ax.set_title(
        f"Fairness suite {report.suite}: {report.flips} flips, max spread "
        f"{report.max_terrorism_spread:.3f}"
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    spread_path = out_dir / "fairness_spread.png"
    fig.savefig(spread_path, dpi=120)
    plt.close(fig)
    return [spread_path]
