"""`triage monitor`: live quality per model version from the decision record, as text, JSON
or PNG plots."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta

from triage.cli.defaults import DEFAULT_MODELS, EXIT_OK
from triage.cli.options import Option, Switch
from triage.cli.values import BadValue, number, path
from triage.core.errors import TriageError
from triage.monitor.drift import PSI_ALERT


def _day_or_moment(raw: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 moment (no offset: UTC)."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadValue(raw, "is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise BadValue(raw, "is outside the years 1 to 9999 in UTC") from None


def since(raw: str) -> datetime:
    return _day_or_moment(raw)


def until(raw: str) -> datetime:
    """A day counts whole (the window ends at the next midnight); a moment is exclusive."""
    moment = _day_or_moment(raw)
    try:
        date.fromisoformat(raw)
    except ValueError:
        return moment
    try:
        return moment + timedelta(days=1)
    except OverflowError:  # the window ends after 9999-12-31: it has no end
        raise BadValue(raw, "is the last day there is: leave --until out instead") from None


OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "--store",
        "the decision record: sqlite:///FILE or postgresql+psycopg://...",
        env="TRIAGE_STORE",
        shown_default="sqlite:///data/triage.db",
        metavar="URL",
    ),
    Option(
        "--models",
        "models directory holding each version's card (the CV baselines of drift)",
        read=path,
        default=DEFAULT_MODELS,
        metavar="DIR",
    ),
    Option(
        "--since",
        "decisions received from this day (YYYY-MM-DD, UTC) or ISO 8601 time on",
        read=since,
        shown_default="the first decision",
        metavar="DATE",
    ),
    Option(
        "--until",
        "decisions received up to this day, included, or before this ISO 8601 time",
        read=until,
        shown_default="now",
        metavar="DATE",
    ),
    Option("--version", "only this model version", metavar="V", shown_default="every version"),
    Option(
        "--compare",
        "compare the live decisions with the shadow answers of VERSION",
        metavar="VERSION",
    ),
    Option(
        "--psi-alert",
        "population stability index above which drift is a significant shift (the alert)",
        read=number(0),
        default=PSI_ALERT,
        metavar="PSI",
    ),
    Option("--plots", "also write PNG plots into DIR (needs matplotlib)", read=path, metavar="DIR"),
    Switch("--json", "json", "print the figures as one JSON document"),
)


def run_monitor(args: argparse.Namespace) -> int:
    from triage.monitor.figures import measure_quality
    from triage.monitor.report import format_report
    from triage.monitor.window import Window
    from triage.store.database import default_url, describe, open_existing

    if args.since is not None and args.until is not None and args.since >= args.until:
        raise TriageError("--since must come before --until: the window is empty")
    url = args.store or default_url()
    window = Window(args.since, args.until)
    store = open_existing(url)
    try:
        report = measure_quality(
            store,
            args.models,
            window,
            versions=[args.version] if args.version else None,
            psi_alert=args.psi_alert,
            compare=args.compare,
        )
    finally:
        store.close()
    plots = []
    if args.plots is not None:
        from triage.monitor.plots import write_monitor_plots

        plots = write_monitor_plots(report, args.plots)
    if args.json:
        document = report.to_dict()
        document["plots"] = [str(p) for p in plots]
        print(json.dumps(document, indent=2))
    else:
        print(format_report(report, describe(url)))
        for plot in plots:
            print(f"wrote {plot}")
    return EXIT_OK
