"""`triage score`: batch scoring on this machine or a Dask cluster."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from triage.cli.cpus import usable_cpus
from triage.cli.defaults import DEFAULT_MODEL, DEFAULT_SCORE_SPOOL, EXIT_OK
from triage.cli.options import Option, Switch
from triage.cli.store_commands import STORE_OPTION, store_url
from triage.cli.values import integer, path
from triage.core.errors import TriageError

OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "inputs",
        "CSV, JSONL or Parquet files (.gz too), folders or globs of .txt files",
        nargs="+",
        metavar="INPUT",
    ),
    Option("--out", "OUTPUT.csv, .jsonl or .parquet", read=path, required=True, metavar="OUTPUT"),
    Option(
        "--model",
        "model directory or models/current",
        read=path,
        default=DEFAULT_MODEL,
        metavar="PATH",
    ),
    Option(
        "--workers",
        "scoring processes",
        read=integer(1),
        shown_default="the CPUs this process may use (affinity and cgroup quota)",
        metavar="N",
    ),
    Option(
        "--chunk-size", "rows per chunk (memory bound)", read=integer(1), default=500, metavar="N"
    ),
    Option("--text-column", "column holding the report text", default="text", metavar="NAME"),
    Option(
        "--id-column",
        "column holding the report id; a row number if absent",
        default="id",
        metavar="NAME",
    ),
    Option(
        "--explain",
        "add a top_terms column with N explanation terms",
        read=integer(0),
        default=0,
        metavar="N",
    ),
    Switch(
        "--segments",
        "segments",
        "one output row per item of a document of several items (listing pages, digests), with "
        "the document id, the item's offsets and its own label; a single report is one item",
    ),
    Switch("--resume", "resume", "continue an interrupted run"),
    Switch("--overwrite", "overwrite", "replace an existing output"),
    Switch("--quiet", "quiet", "no progress output"),
    Option(
        "--dask",
        "score on a Dask cluster: a scheduler address, or 'local'",
        metavar="SCHEDULER",
        shown_default="this machine, no Dask",
    ),
    Switch(
        "--record",
        "record",
        "put every scored row's decision on the decision record (never the report text)",
    ),
    STORE_OPTION,
    Option(
        "--spool",
        "with --record: the local journal of decisions on their way to the store (one process "
        "per folder: not a server's)",
        read=path,
        default=DEFAULT_SCORE_SPOOL,
        env="TRIAGE_SCORE_SPOOL",
        metavar="DIR",
    ),
)
CALLER = "triage score"  # decisions.caller of recorded rows, with the OS user's name


def cmd_score(args: argparse.Namespace) -> int:
    from triage.archive.readers import ArchiveSpec, count_rows

    if args.workers is None:
        args.workers = usable_cpus()
    if args.chunk_size < 1 or args.workers < 1:
        raise TriageError("--chunk-size and --workers must be at least 1")
    spec = ArchiveSpec(tuple(args.inputs), args.text_column, args.id_column)
    if args.dask:
        # Before dask is imported; worker processes inherit it. An explicit setting wins.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

    from triage.archive.job import ScoreJob, run_score_job
    from triage.archive.progress import ProgressDisplay
    from triage.archive.run_record import RecordSettings

    record = RecordSettings(store_url(args), args.spool, _caller()) if args.record else None
    job = ScoreJob(
        spec,
        args.out,
        args.model,
        workers=args.workers,
        chunk_size=args.chunk_size,
        explain_terms=args.explain,
        segments=args.segments,
        resume=args.resume,
        overwrite=args.overwrite,
        dask_scheduler=args.dask,
        record=record,
    )
    mode = "off" if args.quiet else ("bar" if sys.stderr.isatty() else "log")
    total = None if mode == "off" else count_rows(spec)
    try:
        with ProgressDisplay(mode, total) as display:
            summary = run_score_job(job, progress=display.update)
    except KeyboardInterrupt:
        print(
            f"triage: interrupted; continue with: triage score ... --out {args.out} --resume",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print_summary(summary, "on Dask" if args.dask else "")
    return EXIT_OK


def print_summary(summary: Any, where: str) -> None:
    """The end-of-run summary of a local or Dask scoring run (a ``ScoreSummary``)."""
    rate = f" ({summary.rows_per_s:,.0f} rows/s)" if summary.rows_per_s else ""
    place = f"{where} " if where else ""
    print(
        f"scored {summary.scored:,} of {summary.rows:,} rows {place}with model "
        f"{summary.model_version} in {summary.seconds:.1f} s{rate} -> {summary.output}"
    )
    if summary.resumed_from:
        print(f"  resumed after row {summary.resumed_from:,}")
    for label, n in summary.labels.most_common():
        print(f"  {label:<20} {n:>10,}")
    share = summary.needs_review / summary.scored if summary.scored else 0.0
    print(f"  needs review: {summary.needs_review:,} ({share:.1%})")
    detail = f" (see {summary.errors_file})" if summary.errors_file else ""
    print(f"  errors: {summary.errors:,}{detail}")
    record = summary.record
    if record is not None:
        print(f"  decisions recorded: {summary.recorded:,} in {record.store}")
        if record.spooled:
            waiting = _decisions(record.spooled, "is", "are")
            print(
                f"  {waiting} still spooled in {record.spool_dir}: the store did not take them "
                "in time; they are written to it when the next "
                f"`triage score --record --spool {record.spool_dir}` starts"
            )
        if record.rejected:
            refused = _decisions(record.rejected, "was", "were")
            print(
                f"  {refused} refused by the store (the log says why); they are kept in "
                f"{record.rejected_file}"
            )


def _decisions(n: int, one: str, many: str) -> str:
    return f"{n:,} decision {one}" if n == 1 else f"{n:,} decisions {many}"


def _caller() -> str:
    """Who recorded the decisions: this command and the OS user running it, if it has a name."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no LOGNAME/USER and no passwd entry
        return CALLER
    return f"{CALLER} ({user})"[:256] if user else CALLER
