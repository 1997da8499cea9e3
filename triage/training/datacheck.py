"""Audit labelled files before training: counts, lengths, duplicates, leakage, bad rows."""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from triage.core.errors import DataFileError
from triage.core.normalise import normalise_text
from triage.training.corpus import LabelledRow, iter_records, parse_row

NEAR_DUPLICATE_JACCARD = 0.6
SHINGLE_WORDS = 2
CONTAINMENT = 0.8  # share of the smaller text's shingles found in the other
MIN_SHINGLES_FOR_CONTAINMENT = 15
_HASH_SPACE = 1 << 22
_CHUNK = 2_000
_WORD = re.compile(r"\w+")


@dataclass
class FileSummary:
    """Counts and length statistics of one file."""

    path: str
    rows: int
    labels: dict[str, int]
    genres: dict[str, int]
    label_genre: dict[str, dict[str, int]]
    words: dict[str, float]


@dataclass
class DataCheckReport:
    """Everything the check found; ``failed`` says whether the files are fit to train on."""

    files: list[FileSummary] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # bad rows, conflicts, leakage, exact dups
    warnings: list[str] = field(default_factory=list)  # near duplicates inside one file

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [vars(f) for f in self.files],
            "errors": self.errors,
            "warnings": self.warnings,
            "ok": not self.failed,
        }


@dataclass(frozen=True)
class _Doc:
    path: str
    row: LabelledRow
    key: str  # the words of the normalised text, lower-case: equal keys are duplicates


def check_files(paths: list[Path], near: float = NEAR_DUPLICATE_JACCARD) -> DataCheckReport:
    """Check every file; every problem is reported with its file and row, none stops the rest."""
    report = DataCheckReport()
    docs: list[_Doc] = []
    for path in paths:
        rows: list[LabelledRow] = []
        try:
            for row_no, record in iter_records(path):
                try:
                    rows.append(parse_row(path, row_no, record))
                except DataFileError as err:
                    report.errors.append(str(err))
        except DataFileError as err:  # the file as a whole is unreadable
            report.errors.append(str(err))
            continue
        report.files.append(_summarise(path, rows))
        docs.extend(_Doc(str(path), r, _comparable(r.text)) for r in rows)
    _exact_duplicates(docs, report)
    _near_duplicates(docs, near, report)
    return report


def _comparable(text: str) -> str:
    # Case, punctuation and web clutter do not make a copy a different example.
    return " ".join(_WORD.findall(normalise_text(text).lower()))


def _summarise(path: Path, rows: list[LabelledRow]) -> FileSummary:
    words = np.array([len(r.text.split()) for r in rows]) if rows else np.zeros(1)
    label_genre: dict[str, dict[str, int]] = defaultdict(dict)
    for (label, genre), n in sorted(Counter((r.label, r.genre or "(none)") for r in rows).items()):
        label_genre[label][genre] = n
    return FileSummary(
        path=str(path),
        rows=len(rows),
        labels=dict(sorted(Counter(r.label for r in rows).items())),
        genres=dict(sorted(Counter(r.genre or "(none)" for r in rows).items())),
        label_genre=dict(label_genre),
        words={
            "min": float(words.min()),
            "median": float(np.median(words)),
            "p95": float(np.percentile(words, 95)),
            "max": float(words.max()),
        },
    )


def _where(doc: _Doc) -> str:
    return f"{doc.path}: row {doc.row.row} (id {doc.row.id})"


def _exact_duplicates(docs: list[_Doc], report: DataCheckReport) -> None:
    groups: dict[str, list[_Doc]] = defaultdict(list)
    for doc in docs:
        groups[doc.key].append(doc)
    for group in groups.values():
        if len(group) < 2:
            continue
        places = "; ".join(_where(d) for d in group)
        labels = sorted({d.row.label for d in group})
        if len(labels) > 1:
            report.errors.append(f"conflicting labels {labels} for the same text: {places}")
        elif len({d.path for d in group}) > 1:
            report.errors.append(f"leakage: the same text in several files: {places}")
        else:
            report.errors.append(f"exact duplicate: {places}")


def _shingles(doc: _Doc) -> set[int]:
    words = doc.key.split()
    if len(words) < SHINGLE_WORDS:
        return {zlib.crc32(" ".join(words).encode()) % _HASH_SPACE}
    return {
        zlib.crc32(" ".join(words[i : i + SHINGLE_WORDS]).encode()) % _HASH_SPACE
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }


def _near_duplicates(docs: list[_Doc], near: float, report: DataCheckReport) -> None:
    """Near copies by word-bigram sets: Jaccard >= ``near``, or one text's bigrams mostly inside
    the other's (a copy with a paragraph added). Computed as a sparse product in chunks."""
    if len(docs) < 2:
        return
    sets = [_shingles(d) for d in docs]
    indptr = np.cumsum([0] + [len(s) for s in sets])
    indices = np.fromiter((h for s in sets for h in s), dtype=np.int64, count=int(indptr[-1]))
    matrix = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(docs), _HASH_SPACE)
    )
    sizes = np.diff(indptr).astype(np.float32)
    transposed = matrix.T.tocsc()
    for start in range(0, len(docs), _CHUNK):
        inter = (matrix[start : start + _CHUNK] @ transposed).tocoo()
        i, j = inter.row + start, inter.col
        keep = i < j
        i, j, shared = i[keep], j[keep], inter.data[keep]
        jaccard = shared / (sizes[i] + sizes[j] - shared)
        smaller = np.minimum(sizes[i], sizes[j])
        contained = (shared / smaller >= CONTAINMENT) & (smaller >= MIN_SHINGLES_FOR_CONTAINMENT)
        hit = (jaccard >= near) | contained
        for a, b, score in zip(i[hit], j[hit], jaccard[hit], strict=True):
            first, second = docs[a], docs[b]
            if first.key == second.key:
                continue  # already reported as an exact duplicate
            message = f"near duplicate (Jaccard {score:.2f}): {_where(first)} ~ {_where(second)}"
            if first.path != second.path:
                report.errors.append("leakage: " + message)
            elif first.row.label != second.row.label:
                report.errors.append(
                    f"conflicting labels {first.row.label}/{second.row.label}: " + message
                )
            else:
                report.warnings.append(message)


def format_check(report: DataCheckReport) -> str:
    """The data check as a readable report."""
    lines: list[str] = []
    for f in report.files:
        lines.append(f"{f.path}: {f.rows} rows")
        genres = sorted(f.genres)
        lines.append(
            "  " + f"{'label':<20}" + "".join(f"{g:>15}" for g in genres) + f"{'total':>8}"
        )
        for label, total in f.labels.items():
            per = f.label_genre.get(label, {})
            lines.append(
                "  "
                + f"{label:<20}"
                + "".join(f"{per.get(g, 0):>15}" for g in genres)
                + f"{total:>8}"
            )
        w = f.words
        lines.append(
            f"  words per text: min {w['min']:.0f}, median {w['median']:.0f}, "
            f"p95 {w['p95']:.0f}, max {w['max']:.0f}"
        )
    for title, items in (("errors", report.errors), ("warnings", report.warnings)):
        if items:
            lines.append(f"{len(items)} {title}:")
            lines.extend(f"  {item}" for item in items)
    lines.append("FAILED" if report.failed else "OK: no empty, conflicting or leaked rows")
    return "\n".join(lines)
