"""The command line's fixed values: default paths and exit codes."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODELS = Path("models")
DEFAULT_MODEL = DEFAULT_MODELS / "current"
DEFAULT_TRAIN = Path("training/data/train.jsonl")
DEFAULT_TEST = Path("training/data/test.jsonl")


EXIT_OK, EXIT_ERROR, EXIT_NOT_PROMOTED = 0, 1, 3
EXIT_USAGE = 2  # what argparse exits with on a bad flag; a bad TRIAGE_* variable too
