"""What reading a report costs on top of scoring it: the scope checks (known share, language),
pages of several items and evidence offsets (issue 11), against the same model's `predict`
without them, side by side in one process, repeats interleaved, medians of CPU time.

The texts are the test file's reports joined two by two (about 1,650 characters: the length of
the real releases and news items the service gets). "Without" replaces the four checks with
what the model did before them (every text readable and in English, no items, no offsets); the
pipeline, the explanation terms and everything else are the same.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import triage.core.model as served
from triage.core.language import LanguageVerdict
from triage.core.model import TriageModel

ROOT = Path(__file__).resolve().parent.parent
TEST = ROOT / "training" / "data" / "test.jsonl"


class _English:
    def check(self, texts: Sequence[str]) -> list[LanguageVerdict]:
        return [LanguageVerdict("en", True, 1.0) for _ in texts]


class _AllKnown:
    def shares(self, docs: Sequence[str], features: Any) -> np.ndarray:
        return np.ones(len(docs))


@contextmanager
def _without_checks(model: TriageModel) -> Iterator[None]:
    saved = (model._spans, model._language, model._known, served.find_items)
    model._spans, model._language, model._known = None, _English(), _AllKnown()  # type: ignore[assignment]
    served.find_items = lambda text: []
    try:
        yield
    finally:
        model._spans, model._language, model._known, served.find_items = saved


def _per_doc_us(score: Callable[[list[str]], object], docs: list[str], batch: int) -> float:
    started = time.process_time()
    for i in range(0, len(docs), batch):
        score(docs[i : i + batch])
    return (time.process_time() - started) / len(docs) * 1e6


def bench_reading(model: TriageModel, repeats: int) -> dict[str, Any]:
    rows = [json.loads(line)["text"] for line in TEST.read_text("utf-8").splitlines()]
    docs = [" ".join(rows[i : i + 2]) for i in range(0, len(rows), 2)]
    for _ in range(2):  # warm: the word caches, the language detector
        model.predict(docs)
    result: dict[str, Any] = {
        "docs": len(docs),
        "mean_chars": round(sum(map(len, docs)) / len(docs)),
    }
    for batch in (1, 64):
        without: list[float] = []
        with_checks: list[float] = []
        for _ in range(repeats):
            with _without_checks(model):
                without.append(_per_doc_us(model.predict, docs, batch))
            with_checks.append(_per_doc_us(model.predict, docs, batch))
        a, b = statistics.median(without), statistics.median(with_checks)
        result[f"batch_{batch}"] = {"without_us": a, "with_us": b, "ratio": b / a}
    reviewed = model.predict(docs)
    result["review_rate"] = sum(p.needs_review for p in reviewed) / len(docs)
    return result


def print_reading(r: dict[str, Any]) -> None:
    print(
        f"reading checks ({r['docs']} reports of {r['mean_chars']:,} characters, CPU per "
        f"report, median; offsets for the {r['review_rate']:.1%} that need review):"
    )
    for batch in (1, 64):
        b = r[f"batch_{batch}"]
        print(
            f"  batch {batch:>2}: without {b['without_us']:,.0f} us, with {b['with_us']:,.0f} us "
            f"= {b['ratio']:.3f}x"
        )
