"""Comparing the candidate pipelines on the tiny corpus, and the Markdown table of the result."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from triage.training.candidates import CANDIDATES, DEFAULT_CANDIDATE
from triage.training.compare import compare_candidates, format_comparison
from triage.training.corpus import LabelledData, read_labelled

from .conftest import TINY, TINY_CONFIG

# Everything in a row but the wall-clock figures, which differ from run to run.
TIMINGS = {"train_seconds", "predict_docs_per_s"}
COLUMNS = 10


@pytest.fixture(scope="module")
def tiny_data() -> LabelledData:
    return read_labelled(TINY)


@pytest.fixture(scope="module")
def rows(tiny_data: LabelledData) -> list[dict[str, Any]]:
    return compare_candidates(tiny_data, TINY_CONFIG)


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TIMINGS}


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), line
    return [cell.strip() for cell in line[1:-1].split("|")]


def test_one_row_per_candidate_with_figures_in_range(rows: list[dict[str, Any]]) -> None:
    assert [r["candidate"] for r in rows] == list(CANDIDATES)
    assert DEFAULT_CANDIDATE in {r["candidate"] for r in rows}
    for row in rows:
        name = row["candidate"]
        assert row["summary"] == CANDIDATES[name].summary
        for key in ("macro_f1", "accuracy", "ece", "review_rate"):
            assert 0.0 <= row[key] <= 1.0, (name, key, row[key])
        assert math.isfinite(row["log_loss"]) and row["log_loss"] > 0
        assert row["train_seconds"] >= 0 and row["predict_docs_per_s"] > 0
        # No grid search and no test file: nothing chosen, no spread, no test score.
        assert (row["params"], row["fold_std"], row["test_macro_f1"]) == ({}, None, None)
    # Each row comes from its own pipeline, not one model reported four times.
    assert len({(r["macro_f1"], r["log_loss"]) for r in rows}) == len(rows)


def test_a_fixed_seed_gives_the_same_figures(
    rows: list[dict[str, Any]], tiny_data: LabelledData
) -> None:
    again = compare_candidates(tiny_data, TINY_CONFIG, repeats=1)
    assert [_figures(r) for r in again] == [_figures(r) for r in rows]


def test_names_choose_and_order_the_candidates(
    rows: list[dict[str, Any]], tiny_data: LabelledData
) -> None:
    chosen = compare_candidates(tiny_data, TINY_CONFIG, ["complement_nb", "word_lr"], repeats=1)
    by_name = {r["candidate"]: _figures(r) for r in rows}
    assert [_figures(r) for r in chosen] == [by_name["complement_nb"], by_name["word_lr"]]


def test_an_unknown_candidate_is_refused_by_name(tiny_data: LabelledData) -> None:
    with pytest.raises(KeyError, match=r"unknown candidate 'forest'.*word_lr"):
        compare_candidates(tiny_data, TINY_CONFIG, ["forest"], repeats=1)


def test_search_and_test_file_fill_their_columns(tiny_data: LabelledData) -> None:
    names = ["word_lr", "complement_nb"]
    searched = compare_candidates(
        tiny_data, replace(TINY_CONFIG, search=True), names, repeats=1, test=tiny_data
    )
    assert [r["candidate"] for r in searched] == names
    for row in searched:
        grid = CANDIDATES[row["candidate"]].grid
        assert set(row["params"]) == set(grid)
        assert all(value in grid[key] for key, value in row["params"].items())
        assert isinstance(row["fold_std"], float) and 0.0 <= row["fold_std"] < 1.0
        assert 0.0 <= row["test_macro_f1"] <= 1.0
    table = format_comparison(searched).splitlines()
    assert _cells(table[2])[-1].startswith("C=")  # the pipeline step prefix is dropped
    assert "n/a" not in table[2] and "n/a" not in table[3]


def test_the_table_lists_every_candidate_and_its_figures(rows: list[dict[str, Any]]) -> None:
    lines = format_comparison(rows).splitlines()
    header, rule, body = _cells(lines[0]), lines[1], lines[2:]
    assert len(header) == COLUMNS and header[0] == "candidate"
    assert rule == "|" + "---|" * COLUMNS
    assert len(body) == len(rows)
    for line, row in zip(body, rows, strict=True):
        cells = _cells(line)
        assert len(cells) == COLUMNS
        assert cells[0] == row["candidate"]
        assert cells[1] == f"{row['macro_f1']:.3f} (n/a)"
        assert cells[2:5] == [f"{row[k]:.3f}" for k in ("accuracy", "ece", "log_loss")]
        assert float(cells[5].removesuffix("%")) == pytest.approx(
            100 * row["review_rate"], abs=0.05
        )
        assert cells[6] == "n/a" and cells[9] == "defaults"


def test_the_table_formats_a_known_row_exactly() -> None:
    row = {
        "candidate": "word_lr",
        "summary": "words + logistic regression",
        "params": {"classifier__C": 3.0, "classifier__estimator__alpha": 0.3},
        "macro_f1": 0.81234,
        "fold_std": 0.0456,
        "test_macro_f1": 0.7771,
        "accuracy": 0.8,
        "ece": 0.05,
        "log_loss": 0.61,
        "review_rate": 0.125,
        "train_seconds": 12.4,
        "predict_docs_per_s": 12345.6,
    }
    assert format_comparison([row]).splitlines()[2] == (
        "| word_lr | 0.812 (0.046) | 0.800 | 0.050 | 0.610 | 12.5% | 0.777 | 12 | 12,346 "
        "| C=3.0, estimator__alpha=0.3 |"
    )
