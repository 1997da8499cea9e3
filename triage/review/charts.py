"""The dashboard's charts, drawn as SVG on the server from live-quality figures, each with a
table of the same numbers.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>``; its numbers also come
as a :class:`Table` for the page to show beside it (the table is what a screen reader reads).
The SVG is built by :class:`_Svg`, which escapes every text and attribute value, so a label or
version name from the record cannot break out of the markup. No ``style=`` attribute is ever
written (the desk's CSP forbids inline style): shapes carry SVG presentation attributes and
``s0`` ... ``s7`` series classes that dashboard.css colours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

from triage.monitor.drift import STATUS_WORDS, Drift
from triage.monitor.figures import VersionFigures
from triage.monitor.proportion import MIN_N, Proportion
from triage.monitor.report import shown

SERIES_CLASSES = 8  # s0..s7 in dashboard.css; more series reuse them in turn
WIDTH = 640
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 44
_ID = re.compile(r"[a-z][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class Table:
    """The numbers of a chart, as text cells; the first column names the row."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Chart:
    """An SVG chart (safe markup: every value in it is escaped), its title (also the SVG's
    ``<title>``), its legend (series class, name) and its numbers."""

    title: str
    svg: Markup
    table: Table
    legend: tuple[tuple[str, str], ...] = ()


def series_class(index: int) -> str:
    return f"s{index % SERIES_CLASSES}"


def count(n: int) -> str:
    return f"{n:,}"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def proportion_text(p: Proportion, what: str = "feedback") -> str:
    """A share with its 95% interval and n, or why there is none to speak of."""
    interval = p.interval
    if p.share is None or interval is None:
        return f"no {what}"
    figure = f"{p.share:.1%} (95% CI {interval[0]:.1%}-{interval[1]:.1%}, n={p.n:,})"
    return figure if p.enough else f"{figure}: not enough {what} (n < {MIN_N})"


class _Svg:
    """A tiny SVG writer: elements from code-chosen names, every value escaped."""

    def __init__(self, chart_id: str, title: str, desc: str, height: int = HEIGHT) -> None:
        if not _ID.fullmatch(chart_id):
            raise ValueError(f"chart id {chart_id!r} is not a plain lowercase id")
        self.height = height
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
            f'preserveAspectRatio="xMinYMin meet">',
            f'<title id="{chart_id}-title">{_text(title)}</title>',
            f'<desc id="{chart_id}-desc">{_text(desc)}</desc>',
        ]

    def add(
        self, tag: str, text: str | None = None, tip: str | None = None, **attrs: object
    ) -> None:
        """``<tag attrs>text</tag>``; ``tip`` becomes a ``<title>`` child (a hover tooltip);
        attribute names use ``_`` for ``-`` (``text_anchor`` -> ``text-anchor``), and
        ``cls`` for ``class``."""
        shown_attrs = "".join(
            f" {_attr_name(name)}={quoteattr(_value(value))}"
            for name, value in attrs.items()
            if value is not None
        )
        inner = (f"<title>{_text(tip)}</title>" if tip else "") + (_text(text) if text else "")
        self.parts.append(
            f"<{tag}{shown_attrs}>{inner}</{tag}>" if inner else f"<{tag}{shown_attrs}/>"
        )

    def markup(self) -> Markup:
        return Markup("".join([*self.parts, "</svg>"]))  # every part was escaped as it was added


def _attr_name(name: str) -> str:
    return "class" if name == "cls" else name.replace("_", "-")


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _text(value: str) -> str:
    # shown(): printable only, so nothing XML 1.0 forbids (control characters, surrogates) ever
    # gets in; escape(): &, < and >.
    return escape(shown(value, 4000))


def _nice_top(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _value_axis(svg: _Svg, top: float, as_share: bool) -> None:
    """Horizontal grid lines and their labels at 0, half and full ``top``."""
    plot_h = svg.height - TOP - BOTTOM
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        svg.add("line", x1=LEFT, x2=WIDTH - RIGHT, y1=y, y2=y, cls="grid")
        value = top * fraction
        label = f"{value:.0%}" if as_share else f"{value:,.0f}" if value >= 10 else f"{value:g}"
        svg.add("text", label, x=LEFT - 6, y=y + 4, text_anchor="end", cls="axis")


def _category_labels(svg: _Svg, names: Sequence[str], slot: float) -> None:
    """Names under the slots, thinned so that they never overlap (one in ``every``)."""
    every = max(1, math.ceil(len(names) * 64 / (WIDTH - LEFT - RIGHT)))
    for i, name in enumerate(names):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            svg.add("text", name, x=x, y=svg.height - BOTTOM + 16, text_anchor="middle", cls="axis")


def label_mix_chart(figures: VersionFigures, chart_id: str) -> Chart:
    """Decisions per UTC day, stacked by predicted label."""
    labels = list(figures.labels)
    days = figures.days
    version = shown(figures.version)
    title = f"Label mix per day of model {version}"
    svg = _Svg(
        chart_id,
        title,
        f"Stacked bars: decisions of model {version} per UTC day, one segment per predicted "
        f"label ({', '.join(shown(label) for label in labels) or 'none'}); "
        f"{count(figures.decisions)} decisions over {len(days)} days.",
    )
    top = _nice_top(max((day.decisions for day in days), default=0))
    _value_axis(svg, top, as_share=False)
    plot_h = svg.height - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        base = 0
        for j, label in enumerate(labels):
            n = day.labels.get(label, 0)
            if n:
                height = plot_h * n / top
                y = TOP + plot_h * (1 - (base + n) / top)
                tip = f"{day.day}: {shown(label)} {count(n)}"
                svg.add("rect", tip=tip, x=x, y=y, width=bar, height=height, cls=series_class(j))
            base += n
    _category_labels(svg, [day.day[5:] for day in days], slot)  # MM-DD under each bar
    rows = tuple(
        (day.day, *(count(day.labels.get(label, 0)) for label in labels), count(day.decisions))
        for day in days
    )
    total = ("all days", *(count(n) for n in figures.labels.values()), count(figures.decisions))
    return Chart(
        title,
        svg.markup(),
        Table(
            f"Decisions per UTC day and predicted label, model {version}",
            ("day", *(shown(label) for label in labels), "total"),
            (*rows, total) if rows else (),
        ),
        tuple((series_class(j), shown(label)) for j, label in enumerate(labels)),
    )


def reasons_chart(figures: VersionFigures, chart_id: str) -> Chart:
    """Decisions sent to review, per reason (a decision may have several reasons)."""
    version = shown(figures.version)
    reasons = list(figures.reasons.items())
    rate = percent(figures.review_rate)
    height = TOP + 12 + 28 * max(len(reasons), 1)
    title = f"Review reasons of model {version}"
    svg = _Svg(
        chart_id,
        title,
        f"Horizontal bars: decisions sent to review per reason. {count(figures.needs_review)} "
        f"of {count(figures.decisions)} decisions were sent to review ({rate}).",
        height,
    )
    left = 200
    top = _nice_top(max((n for _, n in reasons), default=0))
    span = WIDTH - left - RIGHT - 60
    for i, (reason, n) in enumerate(reasons):
        y = TOP + 28 * i
        svg.add("text", shown(reason, 30), x=left - 8, y=y + 17, text_anchor="end", cls="axis")
        width = span * n / top
        svg.add(
            "rect",
            tip=f"{shown(reason)}: {count(n)}",
            x=left,
            y=y + 4,
            width=width,
            height=18,
            cls="s0",
        )
        svg.add("text", count(n), x=left + width + 6, y=y + 17, cls="value")
    if not reasons:
        svg.add("text", "no decision was sent to review", x=LEFT, y=TOP + 17, cls="value")
    share = figures.decisions or 1
    return Chart(
        title,
        svg.markup(),
        Table(
            f"Decisions sent to review per reason, model {version} (review rate {rate})",
            ("reason", "decisions", "share of all decisions"),
            tuple((shown(r), count(n), percent(n / share)) for r, n in reasons),
        ),
    )


def intervals_chart(
    items: Sequence[tuple[str, Proportion]],
    chart_id: str,
    title: str,
    what: str = "feedback",
) -> Chart:
    """Shares on a 0-100% scale, each a dot with its 95% interval as a bar. A share on fewer
    than ``MIN_N`` observations is drawn hollow and says "not enough"; none at all, a note."""
    height = TOP + BOTTOM + 34 * max(len(items), 1)
    svg = _Svg(
        chart_id,
        title,
        "Dots with whiskers: each share with its 95% Wilson interval on a 0 to 100% scale. "
        + "; ".join(f"{shown(name)}: {proportion_text(p, what)}" for name, p in items),
        height,
    )
    left = 170
    span = WIDTH - left - RIGHT - 20
    bottom = TOP + 34 * max(len(items), 1)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + span * fraction
        svg.add("line", x1=x, x2=x, y1=TOP, y2=bottom, cls="grid")
        svg.add("text", f"{fraction:.0%}", x=x, y=bottom + 16, text_anchor="middle", cls="axis")
    for i, (name, p) in enumerate(items):
        y = TOP + 34 * i + 17
        svg.add("text", shown(name, 24), x=left - 8, y=y + 5, text_anchor="end", cls="axis")
        interval = p.interval
        if p.share is None or interval is None:
            svg.add("text", f"no {what}", x=left + 6, y=y + 5, cls="value")
            continue
        low, high = (left + span * bound for bound in interval)
        svg.add("line", x1=low, x2=high, y1=y, y2=y, cls="whisker")
        for end in (low, high):
            svg.add("line", x1=end, x2=end, y1=y - 6, y2=y + 6, cls="whisker")
        svg.add(
            "circle",
            tip=f"{shown(name)}: {proportion_text(p, what)}",
            cx=left + span * p.share,
            cy=y,
            r=6,
            cls="dot" if p.enough else "dot thin",
        )
        if not p.enough:
            note_x = min(high + 8, WIDTH - RIGHT - 150)
            svg.add("text", f"not enough {what} (n={p.n})", x=note_x, y=y - 9, cls="note")
    return Chart(
        title,
        svg.markup(),
        Table(
            title,
            ("", "share", "95% interval", "n", "enough"),
            tuple(_proportion_row(name, p) for name, p in items),
        ),
    )


def _proportion_row(name: str, p: Proportion) -> tuple[str, ...]:
    interval = p.interval
    span = f"{interval[0]:.1%}-{interval[1]:.1%}" if interval else "-"
    enough = "yes" if p.enough else f"no (n < {MIN_N})"
    return (shown(name), percent(p.share), span, count(p.n), enough)


def drift_chart(figure: Drift, chart_id: str, what: str, alert: float) -> Chart:
    """Live shares against the cross-validation shares, bin by bin, with the PSI."""
    live_total = sum(figure.live) or 1
    baseline = figure.baseline
    base_total = sum(baseline) if baseline else 0
    psi = "not computed" if figure.psi is None else f"{figure.psi:.3f}"
    title = f"Live {what} against cross-validation"
    svg = _Svg(
        chart_id,
        title,
        f"Paired bars per bin: the live share (dark) and the cross-validation share (light). "
        f"Population stability index {psi}; the alert is above {alert:g}.",
    )
    live = [n / live_total for n in figure.live]
    cv = [n / base_total for n in baseline] if baseline and base_total else []
    top = _nice_top(max([*live, *cv], default=0))
    _value_axis(svg, top, as_share=True)
    plot_h = svg.height - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(figure.bins), 1)
    bar = max(slot * 0.36, 1.0)
    for i, name in enumerate(figure.bins):
        x = LEFT + slot * i + slot / 2 - bar
        pairs = [(live[i], "live", "s0")]
        if cv:
            pairs.append((cv[i], "cross-validation", "cv"))
        for k, (share, side, cls) in enumerate(pairs):
            height = plot_h * share / top
            svg.add(
                "rect",
                tip=f"{shown(name)}: {side} {share:.1%}",
                x=x + k * bar,
                y=TOP + plot_h - height,
                width=bar,
                height=height,
                cls=cls,
            )
    _category_labels(svg, [shown(name, 12) for name in figure.bins], slot)
    rows = tuple(
        (shown(name), count(figure.live[i]), percent(live[i]), percent(cv[i]) if cv else "-")
        for i, name in enumerate(figure.bins)
    )
    return Chart(
        title,
        svg.markup(),
        Table(
            f"Live {what} against cross-validation (PSI {psi}, alert above {alert:g})",
            ("bin", "live decisions", "live share", "cross-validation share"),
            rows,
        ),
        (("s0", "live"), ("cv", "cross-validation")) if cv else (("s0", "live"),),
    )


def psi_chart(
    figures: Sequence[tuple[str, Drift]], chart_id: str, title: str, moderate: float, alert: float
) -> Chart:
    """Each drift's PSI as a bar against the moderate and alert thresholds (dashed lines)."""
    height = TOP + BOTTOM + 34 * max(len(figures), 1)
    values = [d.psi for _, d in figures if d.psi is not None]
    # Past 1 the exact size of a shift hardly matters: longer bars are cut at the axis end
    # (their value is still written beside them).
    top = _nice_top(max(alert * 2.5, min(max(values, default=0.0), 1.0)))
    svg = _Svg(
        chart_id,
        title,
        f"Horizontal bars: the population stability index of each distribution against "
        f"cross-validation, with the moderate ({moderate:g}) and alert ({alert:g}) thresholds. "
        + "; ".join(f"{shown(name)}: {_psi_words(d)}" for name, d in figures),
        height,
    )
    left = 170
    span = WIDTH - left - RIGHT - 60
    bottom = TOP + 34 * max(len(figures), 1)
    for fraction in (0.0, 0.5, 1.0):
        x = left + span * fraction
        svg.add("line", x1=x, x2=x, y1=TOP, y2=bottom, cls="grid")
        svg.add("text", f"{top * fraction:g}", x=x, y=bottom + 16, text_anchor="middle", cls="axis")
    for i, (name, d) in enumerate(figures):
        y = TOP + 34 * i
        svg.add("text", shown(name, 24), x=left - 8, y=y + 21, text_anchor="end", cls="axis")
        if d.psi is None:
            svg.add("text", _psi_words(d), x=left + 6, y=y + 21, cls="value")
            continue
        width = span * min(d.psi, top) / top
        svg.add(
            "rect",
            tip=f"{shown(name)}: {_psi_words(d)}",
            x=left,
            y=y + 8,
            width=width,
            height=18,
            cls="alert-bar" if d.alert else "s0",
        )
        svg.add("text", f"{d.psi:.3f}", x=left + width + 6, y=y + 21, cls="value")
    # Over the bars, so that a long bar does not hide where the thresholds are.
    for threshold, name, anchor in ((moderate, "moderate", "end"), (alert, "alert", "start")):
        x = left + span * threshold / top
        svg.add("line", x1=x, x2=x, y1=TOP - 4, y2=bottom, cls=f"threshold {name}")
        svg.add("text", f"{name} {threshold:g}", x=x, y=bottom + 32, text_anchor=anchor, cls="axis")
    return Chart(
        title,
        svg.markup(),
        Table(
            f"{title} (moderate above {moderate:g}, alert above {alert:g})",
            ("", "PSI", "status", "live decisions"),
            tuple(
                (
                    shown(name),
                    "-" if d.psi is None else f"{d.psi:.3f}",
                    STATUS_WORDS[d.status],
                    count(sum(d.live)),
                )
                for name, d in figures
            ),
        ),
    )


def _psi_words(d: Drift) -> str:
    words = STATUS_WORDS[d.status]
    return words if d.psi is None else f"PSI {d.psi:.3f}, {words}"
