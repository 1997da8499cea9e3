"""Shared constants and helpers of the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_MODELS = Path("models")
DEFAULT_MODEL = DEFAULT_MODELS / "current"
DEFAULT_TRAIN = Path("training/data/train.jsonl")
DEFAULT_TEST = Path("training/data/test.jsonl")


EXIT_OK, EXIT_ERROR, EXIT_NOT_PROMOTED = 0, 1, 3
EXIT_USAGE = 2  # what argparse exits with on a bad flag; a bad TRIAGE_* variable too


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
