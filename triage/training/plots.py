"""Draw an evaluation as PNGs: confusion matrix and reliability diagram (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path

from triage.core.errors import TriageError
from triage.core.evaluation import Evaluation


def write_plots(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """Write ``confusion_matrix.png`` and ``reliability.png`` into ``out_dir``; return paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise TriageError("--plots needs matplotlib: pip install 'triage[plots]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
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
