"""`triage score`: batch scoring on this machine or a Dask cluster."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from triage.cli.common import DEFAULT_MODEL, EXIT_OK
from triage.core.errors import TriageError


def add_parser(sub: Any, env: Mapping[str, str]) -> None:
    """`triage score` arguments."""
    p = sub.add_parser("score", help="score archives of reports in batch (one machine or Dask)")
    p.add_argument(
        "inputs",
        nargs="+",
        help="CSV, JSONL or Parquet files (.gz too), folders or globs of .txt files",
    )
    p.add_argument("--out", type=Path, required=True, help="OUTPUT.csv, .jsonl or .parquet")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="scoring processes (default: all cores)",
    )
    p.add_argument("--chunk-size", type=int, default=500, help="rows per chunk (memory bound)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--id-column", default="id", help="(default id; a row number if absent)")
    p.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="N",
        help="add a top_terms column with N explanation terms",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        default=None,
        help="score on a Dask cluster: a scheduler address, or 'local'",
    )
    p.set_defaults(command=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    from triage.archive.readers import ArchiveSpec, count_rows

    if args.chunk_size < 1 or args.workers < 1:
        raise TriageError("--chunk-size and --workers must be at least 1")
    spec = ArchiveSpec(tuple(args.inputs), args.text_column, args.id_column)
    if args.dask:
        from triage.archive.dask_job import DaskJob, score_on_dask

        # Before dask is imported; worker processes inherit it. An explicit setting wins.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

        summary = score_on_dask(
            DaskJob(
                spec,
                args.out,
                args.model,
                args.dask,
                args.workers,
                args.chunk_size,
                args.explain,
                args.overwrite,
            )
        )
        print_summary(summary, "on Dask")
        return EXIT_OK

    from triage.archive.local_job import ScoreJob, run_score_job
    from triage.archive.progress import ProgressDisplay

    job = ScoreJob(
        spec,
        args.out,
        args.model,
        args.workers,
        args.chunk_size,
        args.explain,
        args.resume,
        args.overwrite,
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
        print_summary(summary, "")
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
    if summary.errors_file:
        detail = f" (see {summary.errors_file})"
    elif summary.errors_column and summary.errors:
        detail = f" (rows with a non-empty {summary.errors_column!r} column)"
    else:
        detail = ""
    print(f"  errors: {summary.errors:,}{detail}")
