"""Live quality as text, as ``triage monitor`` prints it."""

from __future__ import annotations

from triage.monitor import drift
from triage.monitor.drift import Drift
from triage.monitor.figures import HISTOGRAM_EDGES, QualityReport, VersionFigures
from triage.monitor.proportion import MIN_N, Proportion
from triage.monitor.shadow import ShadowComparison

BAR_WIDTH = 40


def shown(value: str, limit: int = 64) -> str:
    """A name from the record (version, label, reason) made safe for a terminal: no control
    characters, bounded length."""
    cleaned = "".join(c if c.isprintable() else "?" for c in value)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def format_proportion(p: Proportion, what: str = "feedback") -> str:
    interval = p.interval
    if p.share is None or interval is None:
        return f"no {what} (n=0)"
    figure = f"{p.share:.3f} [95% CI {interval[0]:.3f}-{interval[1]:.3f}] (n={p.n})"
    return figure if p.enough else f"{figure}: not enough {what} (n < {MIN_N})"


def format_drift(d: Drift) -> str:
    if d.psi is None:
        return drift.STATUS_WORDS[d.status]
    return f"PSI {d.psi:.3f}: {drift.STATUS_WORDS[d.status]}"


def format_report(report: QualityReport, store_name: str) -> str:
    alert = report.psi_alert
    lines = [
        f"Live quality of {store_name}: {report.window.describe()} (days in UTC)",
        f"Drift is the population stability index (PSI) against the model's cross-validation: "
        f"<= {drift.PSI_MODERATE:g} stable, {drift.PSI_MODERATE:g}-{alert:g} moderate shift, "
        f"> {alert:g} significant shift (the alert).",
    ]
    if not report.versions:
        lines.append("No decisions recorded in this window.")
    for figures in report.versions:
        lines.append("")
        lines.extend(_version_lines(figures))
    if report.comparison is not None:
        lines.append("")
        lines.extend(_comparison_lines(report.comparison))
    return "\n".join(lines)


def _version_lines(v: VersionFigures) -> list[str]:
    name = shown(v.version)
    baseline = "CV baseline from its model card"
    if v.baseline.card is None:
        baseline = f"no CV baseline: {v.baseline.problem}"
    rate = v.review_rate or 0.0
    reasons = ", ".join(f"{shown(r)} {n:,}" for r, n in v.reasons.items()) or "none"
    lines = [
        f"model {name}  ({baseline})",
        f"  decisions        {v.decisions:,}",
        f"  review rate      {rate:.1%} ({v.needs_review:,} flagged); reasons: {reasons}",
        "  live accuracy against reviewer labels (latest feedback per decision):",
        f"    accepted       {format_proportion(v.accuracy.accepted)}",
        f"    flagged        {format_proportion(v.accuracy.flagged)}",
        f"    all reviewed   {format_proportion(v.accuracy.reviewed)}",
        f"    corrected      {format_proportion(v.accuracy.corrected)}",
        f"  drift vs CV      label mix: {format_drift(v.label_drift)}",
        f"                   confidence: {format_drift(v.confidence_drift)}",
    ]
    if v.labels:
        lines.append("  label mix per day (UTC)")
        lines.extend(_day_table(v))
    lines.append("  confidence histogram")
    peak = max(v.histogram, default=0) or 1
    for low, high, count in zip(HISTOGRAM_EDGES, HISTOGRAM_EDGES[1:], v.histogram, strict=False):
        bar = "#" * round(BAR_WIDTH * count / peak)
        lines.append(f"    {low:.1f}-{high:.1f}  {count:>9,}  {bar}".rstrip())
    return lines


def _day_table(v: VersionFigures) -> list[str]:
    names = [shown(label, 20) for label in v.labels]
    width = max(7, *(len(f"{n:,}") for n in v.labels.values()))
    widths = [max(width, len(name)) for name in names]
    total_width = max(7, len(f"{v.decisions:,}"))

    def row(first: str, cells: list[str], total: str) -> str:
        shown_cells = "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        return f"    {first:<10}  {shown_cells}  {total:>{total_width}}"

    rows = [row("day", names, "total")]
    for day in v.days:
        counts = [f"{day.labels.get(label, 0):,}" for label in v.labels]
        rows.append(row(day.day, counts, f"{day.decisions:,}"))
    rows.append(row("all", [f"{n:,}" for n in v.labels.values()], f"{v.decisions:,}"))
    return rows


def _comparison_lines(c: ShadowComparison) -> list[str]:
    name = shown(c.shadow_version)
    if not c.versions:
        return [f"shadow {name}: no shadow answers in this window"]
    lines = []
    for a in c.versions:
        live = shown(a.live_version)
        lines += [
            f"shadow {name} against live {live}",
            f"  agreement        {format_proportion(a.agreement, 'shadow answers')}",
            "  accuracy against reviewer labels, on the same reviewed decisions:",
            f"    live           {format_proportion(a.live_accuracy)}",
            f"    shadow         {format_proportion(a.shadow_accuracy)}",
            "  confusion (rows: live label, columns: shadow label)",
        ]
        width = max(10, *(len(shown(label, 20)) for label in a.labels))
        lines.append(
            f"    {'':<{width}}  " + "  ".join(f"{shown(x, 20):>{width}}" for x in a.labels)
        )
        for label, row in zip(a.labels, a.confusion, strict=True):
            cells = "  ".join(f"{n:>{width},}" for n in row)
            lines.append(f"    {shown(label, 20):<{width}}  {cells}")
    return lines
