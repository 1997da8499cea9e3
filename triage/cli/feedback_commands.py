"""`triage feedback ...`: bulk corrections into the decision record, reviewed reports out of it
as training data.

The way back into training: ``triage feedback export --since DATE --out reviewed.jsonl``, then
``triage train --data training/data/train.jsonl --data reviewed.jsonl``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from triage.cli.defaults import EXIT_OK
from triage.cli.options import Option, Switch
from triage.cli.store_commands import (
    KEY_FILE_OPTION,
    KEYS_OPTION,
    STORE_OPTION,
    cipher_of,
    store_url,
)
from triage.cli.values import BadValue, path


def moment(raw: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or time; a time without an offset is UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadValue(
            raw, "is not an ISO 8601 date or time: expected e.g. 2026-12-01 or 2026-12-01T14:30Z"
        ) from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise BadValue(raw, "is outside the years 1 to 9999 in UTC") from None


IMPORT_OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "file",
        "CSV or JSONL file with the columns decision_id or report_id, label, and optionally "
        "reviewer, note, created_at (ISO 8601). Every row is checked first: one bad row refuses "
        "the whole file and nothing is written. Importing the same file again writes nothing new. "
        "A regular file of at most 256 MiB",
        read=path,
        metavar="FILE",
    ),
    STORE_OPTION,
    Option(
        "--reviewer",
        "the reviewer of rows that name none",
        metavar="NAME",
    ),
)

EXPORT_OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "--since",
        "export decisions whose latest feedback is at or after this date or time (UTC unless "
        "it says otherwise)",
        read=moment,
        metavar="DATE",
        shown_default="every reviewed decision",
    ),
    Option(
        "--out",
        "the training file to write (JSONL; replaced atomically, mode 600: it holds report texts)",
        read=path,
        required=True,
        metavar="FILE",
    ),
    STORE_OPTION,
    KEY_FILE_OPTION,
    KEYS_OPTION,
)


def run_import(args: argparse.Namespace) -> int:
    from triage.store.database import open_existing
    from triage.store.feedback_import import import_feedback

    store = open_existing(store_url(args))
    try:
        result = import_feedback(store, args.file, reviewer_default=args.reviewer or "")
    finally:
        store.close()
    print(result.summary())
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    from triage.store.errors import KeyProblem
    from triage.store.export import export_reviewed

    cipher = cipher_of(args)
    if cipher is None:
        raise KeyProblem(
            "export needs the keys the report texts were sealed with: --store-key-file FILE "
            "or TRIAGE_STORE_KEYS"
        )
    from triage.store.database import open_existing

    store = open_existing(store_url(args))
    try:
        result = export_reviewed(store, cipher, since=args.since, out=args.out)
    finally:
        store.close()
    print(result.summary())
    if result.exported:
        print(f"train on it with: triage train --data training/data/train.jsonl --data {args.out}")
    return EXIT_OK
