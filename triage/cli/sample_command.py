"""`triage review-sample`: queue the most uncertain rows of a scored archive for the review
desk (active learning over archives)."""

from __future__ import annotations

import argparse
import getpass
from datetime import timedelta

from triage.cli.defaults import DEFAULT_RETENTION_DAYS, EXIT_OK
from triage.cli.options import Option, Switch
from triage.cli.store_commands import (
    KEY_FILE_OPTION,
    KEYS_OPTION,
    STORE_OPTION,
    cipher_of,
    store_url,
)
from triage.cli.values import integer, number, path
from triage.core.errors import TriageError

CALLER = "triage review-sample"  # decisions.caller, with the OS user's name
MAX_SAMPLE = 100_000

OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "--scored",
        "the `triage score` output to sample (CSV, JSONL or Parquet)",
        read=path,
        required=True,
        metavar="OUTPUT",
    ),
    Option(
        "--input",
        "the archive that output was scored from (repeat for several files, in the order "
        "`triage score` was given them)",
        required=True,
        repeat=True,
        dest="inputs",
        metavar="INPUT",
    ),
    Option("--text-column", "column holding the report text", default="text", metavar="NAME"),
    Option(
        "--id-column",
        "column holding the report id; a row number if absent (as for `triage score`)",
        default="id",
        metavar="NAME",
    ),
    Option(
        "--n",
        "how many rows to queue: those with the smallest margin between the top two probabilities",
        read=integer(1, MAX_SAMPLE),
        default=100,
        metavar="N",
    ),
    Option(
        "--model-version",
        "the model version of rows whose output has no model_version value",
        metavar="VERSION",
    ),
    Option(
        "--retention-days",
        "keep the queued texts this many days (then `triage store purge` deletes them)",
        read=number(0.01, 3650),
        default=float(DEFAULT_RETENTION_DAYS),
        env="TRIAGE_RETENTION_DAYS",
        metavar="DAYS",
    ),
    STORE_OPTION,
    KEY_FILE_OPTION,
    KEYS_OPTION,
)


def run_sample(args: argparse.Namespace) -> int:
    from triage.archive.readers import ArchiveSpec, read_archive
    from triage.review.archive_sample import sample_archive
    from triage.store.database import open_existing

    cipher = cipher_of(args)
    if cipher is None:
        raise TriageError(
            "the queued texts are stored encrypted: give --store-key-file FILE (or "
            "TRIAGE_STORE_KEYS), the keys the review desk opens them with"
        )
    spec = ArchiveSpec(tuple(args.inputs), args.text_column, args.id_column)
    store = open_existing(store_url(args))
    try:
        result = sample_archive(
            store,
            cipher,
            args.scored,
            read_archive(spec),
            n=args.n,
            retention=timedelta(days=args.retention_days),
            caller=_caller(),
            model_version=args.model_version,
        )
    finally:
        store.close()
    print(result.summary())
    return EXIT_OK


def _caller() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no LOGNAME/USER and no passwd entry
        return CALLER
    return f"{CALLER} ({user})" if user else CALLER
