"""The command line's fixed values: default paths and exit codes."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODELS = Path("models")
DEFAULT_MODEL = DEFAULT_MODELS / "current"
DEFAULT_TRAIN = Path("training/data/train.jsonl")
DEFAULT_TEST = Path("training/data/test.jsonl")
# The decision record (the library's own defaults are the same; the CLI names them here so that
# --help needs no database import).
DEFAULT_SPOOL = Path("data/spool")
DEFAULT_SCORE_SPOOL = Path("data/spool-score")  # each spool is one process's: not a server's
DEFAULT_RETENTION_DAYS = 30
DEFAULT_PURGE_SECONDS = 3600.0


EXIT_OK, EXIT_ERROR, EXIT_NOT_PROMOTED = 0, 1, 3
EXIT_USAGE = 2  # what argparse exits with on a bad flag; a bad TRIAGE_* variable too
