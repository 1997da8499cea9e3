"""Audit labelled files before training: counts, lengths, duplicates, conflicts, leakage.

Two entries: :func:`check_files` reports on any files (``triage data check``), and
:func:`combine_training_files` decides what ``triage train`` may train on when it is given
several files. Texts are compared after :func:`comparable_text` (case, whitespace, punctuation
and web clutter do not make a copy a different example).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import replace as replaced
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from triage.core.errors import DataFileError, TriageError
from triage.core.normalise import normalise_text
from triage.training.corpus import LabelledData, LabelledRow, TrainingSet, iter_records, parse_row

NEAR_DUPLICATE_JACCARD = 0.6
SHINGLE_WORDS = 2
CONTAINMENT = 0.8  # share of the smaller text's shingles found in the other
MIN_SHINGLES_FOR_CONTAINMENT = 15
_HASH_SPACE = 1 << 22
_CHUNK = 2_000
_WORD = re.compile(r"\w+")
SHOWN_PROBLEMS = 10
# Why combining training files left a row out (the model card's set_aside counts).
DUPLICATE, OVERRIDDEN, LEAKED = "duplicate", "overridden", "leaked"


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


def check_files(
    paths: list[Path], near: float = NEAR_DUPLICATE_JACCARD, test: Path | None = None
) -> DataCheckReport:
    """Check every file; every problem is reported with its file and row, none stops the rest.

    Without ``test``, a text found in two files is leakage (the files are a training file and
    its test file). With ``test``, the other files are training files to be combined: a text in
    a training file and the test file is leakage, a text with different labels is a conflict,
    and the same text and label in several training files is a warning (training keeps one
    copy).
    """
    report = DataCheckReport()
    docs: list[_Doc] = []
    if test is not None and test not in paths:
        paths = [*paths, test]
    test_name = str(test) if test is not None else None
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
        docs.extend(_Doc(str(path), r, comparable_text(r.text)) for r in rows)
    _exact_duplicates(docs, report, test_name)
    _near_duplicates(docs, near, report, test_name)
    return report


def comparable_text(text: str) -> str:
    """The words of ``text`` after normalisation, lower-case: equal values are copies."""
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


def _exact_duplicates(docs: list[_Doc], report: DataCheckReport, test: str | None) -> None:
    groups: dict[str, list[_Doc]] = defaultdict(list)
    for doc in docs:
        groups[doc.key].append(doc)
    for group in groups.values():
        if len(group) < 2:
            continue
        places = "; ".join(_where(d) for d in group)
        labels = sorted({d.row.label for d in group})
        files = {d.path for d in group}
        if len(labels) > 1:
            report.errors.append(f"conflicting labels {labels} for the same text: {places}")
        elif len(files) > 1 and test is None:
            report.errors.append(f"leakage: the same text in several files: {places}")
        elif len(files) > 1 and test in files:
            report.errors.append(f"leakage: the same text in the training and test files: {places}")
        elif len(files) > 1:
            report.warnings.append(
                f"the same text and label in several training files (training keeps the copy "
                f"of the last file): {places}"
            )
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


def _near_duplicates(
    docs: list[_Doc], near: float, report: DataCheckReport, test: str | None
) -> None:
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
            across = first.path != second.path
            if across and (test is None or test in (first.path, second.path)):
                report.errors.append("leakage: " + message)
            elif first.row.label != second.row.label:  # in one file, or two training files
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


class TrainingDataRefused(TriageError):
    """The training files conflict with each other or leak into the test file, and no option
    said how to resolve it: nothing is trained."""


@dataclass(frozen=True)
class Place:
    """A row of the ``file``-th training file (-1: the test file)."""

    file: int
    path: str
    row: LabelledRow

    def __str__(self) -> str:
        return f"{self.path}: row {self.row.row} (id {self.row.id})"


@dataclass(frozen=True)
class TrainingSetAudit:
    """What combining training files would meet: texts in several training files with
    different labels (conflicts) or the same label (duplicates), and training rows whose text
    is in the test file (leaks: the training row, then a test row with that text)."""

    conflicts: tuple[tuple[Place, ...], ...]
    duplicates: tuple[tuple[Place, ...], ...]
    leaks: tuple[tuple[Place, Place], ...]
    test_is_training: bool  # the test file is byte for byte a training file: not checked


def audit_training_set(
    files: Sequence[LabelledData], test: LabelledData | None
) -> TrainingSetAudit:
    """Compare the training files with each other and with ``test``, by exact comparable text.
    Copies inside one file are left to ``triage data check``, as they were before several
    files could be combined."""
    groups: dict[str, list[Place]] = defaultdict(list)
    for index, data in enumerate(files):
        for row in data.rows:
            groups[comparable_text(row.text)].append(Place(index, str(data.path), row))
    conflicts: list[tuple[Place, ...]] = []
    duplicates: list[tuple[Place, ...]] = []
    for group in groups.values():
        if len({p.file for p in group}) < 2:
            continue
        (conflicts if len({p.row.label for p in group}) > 1 else duplicates).append(tuple(group))
    test_is_training = test is not None and any(f.sha256 == test.sha256 for f in files)
    leaks: list[tuple[Place, Place]] = []
    if test is not None and not test_is_training:
        in_test: dict[str, Place] = {}
        for row in test.rows:
            in_test.setdefault(comparable_text(row.text), Place(-1, str(test.path), row))
        leaks = [
            (place, in_test[key])
            for key, group in groups.items()
            if key in in_test
            for place in group
        ]
    return TrainingSetAudit(tuple(conflicts), tuple(duplicates), tuple(leaks), test_is_training)


def combine_training_files(
    files: Sequence[LabelledData],
    test: LabelledData | None,
    *,
    allow_conflicts: bool = False,
    drop_leaked: bool = False,
) -> TrainingSet:
    """The rows to train on from ``files`` (in the order given), or :class:`TrainingDataRefused`.

    A text in several training files is trained on once, from the last file that holds it:
    for the same label that drops a duplicate; for different labels (a conflict) it is refused
    unless ``allow_conflicts``, which lets the later file (reviewers' corrections listed after
    the corpus) decide. A training text that is also in the test file is refused unless
    ``drop_leaked``, which trains without it. A test file that is one of the training files is
    taken as asked (its figures then measure the fit, not generalisation).
    """
    audit = audit_training_set(files, test)
    problems: list[str] = []
    if audit.conflicts and not allow_conflicts:
        problems += [
            f"conflicting labels {sorted({p.row.label for p in group})} for the same text: "
            + "; ".join(str(p) for p in group)
            for group in audit.conflicts
        ]
    if audit.leaks and not drop_leaked:
        problems += [
            f"leakage: {train} is also in the test file, at {test_row}"
            for train, test_row in audit.leaks
        ]
    if problems:
        raise TrainingDataRefused(_refusal(audit, problems, allow_conflicts, drop_leaked))
    left_out: dict[tuple[int, int], str] = {}
    for reason, groups in ((OVERRIDDEN, audit.conflicts), (DUPLICATE, audit.duplicates)):
        for group in groups:
            last = max(p.file for p in group)
            left_out.update({(p.file, p.row.row): reason for p in group if p.file != last})
    for train, _ in audit.leaks:
        left_out.setdefault((train.file, train.row.row), LEAKED)
    kept = tuple(
        replaced(data, rows=tuple(r for r in data.rows if (index, r.row) not in left_out))
        for index, data in enumerate(files)
    )
    counts = Counter(left_out.values())
    return TrainingSet(
        files=tuple(files),
        kept=kept,
        set_aside={reason: counts[reason] for reason in (DUPLICATE, OVERRIDDEN, LEAKED)},
    )


def _refusal(
    audit: TrainingSetAudit, problems: list[str], allow_conflicts: bool, drop_leaked: bool
) -> str:
    counts = []
    if audit.conflicts and not allow_conflicts:
        counts.append(f"{len(audit.conflicts)} text(s) with conflicting labels")
    if audit.leaks and not drop_leaked:
        counts.append(f"{len(audit.leaks)} training row(s) leaked into the test file")
    lines = [f"the training data has {' and '.join(counts)}; nothing was trained:"]
    lines += [f"  {problem}" for problem in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(problems) - SHOWN_PROBLEMS} more (see `triage data check`)")
    if audit.conflicts and not allow_conflicts:
        lines.append(
            "fix the labels, or pass --allow-conflicts to train on the label of the last --data "
            "file that holds the text"
        )
    if audit.leaks and not drop_leaked:
        lines.append(
            "remove those rows, or pass --drop-leaked to train without them (the test file is "
            "left as it is)"
        )
    return "\n".join(lines)
