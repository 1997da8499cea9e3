"""One row of a report archive: where it came from, its id, and its text or why it has none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchiveRow:
    """One input row. ``problem`` says why it cannot be scored (then ``text`` is empty)."""

    source: str
    row: int  # 1-based: data record (CSV), line (JSONL), row (Parquet); 1 for a .txt file
    id: str
    text: str
    problem: str | None = None
    line: int | None = None  # the file line it starts on (CSV, JSONL, .txt); None for Parquet
