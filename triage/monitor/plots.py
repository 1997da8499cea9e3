"""Draw live quality as PNGs: label mix per day, live against CV confidence, accuracy per
version (needs matplotlib, the ``plots`` extra; imported only when plotting)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from triage.core.errors import TriageError
from triage.monitor.figures import QualityReport, VersionFigures
from triage.monitor.report import shown

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _pyplot(out_dir: Path) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise TriageError("--plots needs matplotlib: pip install 'triage[plots]'") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TriageError(f"cannot create the plots folder {out_dir}: {err.strerror}") from None
    return plt


def file_stem(version: str, taken: set[str]) -> str:
    """A file name part for ``version`` (a name from the record, so not trusted as a path):
    only letters, digits, '.', '_' and '-', never two versions on one name."""
    stem = _UNSAFE.sub("_", version)[:64].lstrip(".") or "version"
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate)
    return candidate


def write_monitor_plots(report: QualityReport, out_dir: Path) -> list[Path]:
    """Write, into ``out_dir``, ``label_mix_<version>.png`` and ``confidence_<version>.png`` for
    each version and ``accuracy.png`` for all; return the paths written."""
    plt = _pyplot(out_dir)
    paths: list[Path] = []
    taken: set[str] = set()
    try:
        for figures in report.versions:
            stem = file_stem(figures.version, taken)
            paths.append(_label_mix(plt, figures, out_dir / f"label_mix_{stem}.png"))
            paths.append(_confidence(plt, figures, out_dir / f"confidence_{stem}.png"))
        paths.append(_accuracy(plt, report, out_dir / "accuracy.png"))
    except OSError as err:
        raise TriageError(f"cannot write plots into {out_dir}: {err.strerror}") from None
    return paths


def _label_mix(plt: Any, v: VersionFigures, path: Path) -> Path:
    days = [d.day for d in v.days]
    fig, ax = plt.subplots(figsize=(max(7.5, 0.35 * len(days) + 4.5), 4.5))
    bottom = [0] * len(days)
    for label in v.labels:
        counts = [d.labels.get(label, 0) for d in v.days]
        ax.bar(range(len(days)), counts, bottom=bottom, label=shown(label, 30))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_xticks(range(len(days)), days, rotation=45, ha="right")
    ax.set_ylabel("decisions")
    ax.set_title(f"Label mix per day (UTC), model {shown(v.version, 40)}")
    if v.labels:  # beside the bars, never over them
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _confidence(plt: Any, v: VersionFigures, path: Path) -> Path:
    d = v.confidence_drift
    lows = list(d.edges[:-1])
    widths = [high - low for low, high in zip(d.edges, d.edges[1:], strict=False)]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    live_total = sum(d.live) or 1
    ax.bar(
        lows,
        [n / live_total for n in d.live],
        width=widths,
        align="edge",
        alpha=0.6,
        edgecolor="black",
        label=f"live (n={sum(d.live):,})",
    )
    if d.baseline is not None:
        cv_total = sum(d.baseline) or 1
        ax.step(
            [*lows, d.edges[-1]],
            [*(n / cv_total for n in d.baseline), d.baseline[-1] / cv_total],
            where="post",
            color="darkred",
            label=f"cross-validation (n={sum(d.baseline):,})",
        )
    psi = f", PSI {d.psi:.3f}" if d.psi is not None else ""
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (top label)")
    ax.set_ylabel("share of decisions")
    ax.set_title(f"Confidence, model {shown(v.version, 40)}{psi}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _accuracy(plt: Any, report: QualityReport, path: Path) -> Path:
    names = [shown(v.version, 30) for v in report.versions]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(names) + 2), 4.5))
    for i, v in enumerate(report.versions):
        accepted = v.accuracy.accepted
        interval = accepted.interval
        if accepted.share is None or interval is None:
            ax.annotate("no feedback", (i, 0.5), ha="center", fontsize="small")
            continue
        ax.errorbar(
            [i],
            [accepted.share],
            yerr=[[accepted.share - interval[0]], [interval[1] - accepted.share]],
            fmt="o" if accepted.enough else "o--",
            mfc=None if accepted.enough else "white",
            capsize=6,
            color="steelblue",
        )
        note = f"n={accepted.n}" + ("" if accepted.enough else " (too few)")
        ax.annotate(
            note,
            (i, interval[0]),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize="small",
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_xlim(-0.5, max(len(names), 1) - 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy of accepted predictions")
    ax.set_title("Accepted predictions against reviewer labels\n(95% Wilson interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
