"""The model's own speed beside fastText's, on realistic texts, side by side in one process.

The texts are `bench/data/realistic.jsonl`: 80 reports written for this bench (releases, news,
first-person reports, bulletins; 20 per label; mean about 1,700 characters, the length of the
real texts the service gets). Each repeat measures, one after the other so that the machine's
drift hits all alike:

- the served model's `predict` (5 explanation terms, the scope checks, items, evidence spans:
  everything an answer carries) over all texts in one call;
- scikit-learn running the same fitted pipeline (`pipeline.predict_proba`, scikit-learn's own
  `TfidfVectorizer.transform`): the arithmetic without triage's faster feature code;
- fastText (supervised, word bigrams; `fasttext_bench.py`) trained on the same corpus: the
  usual yardstick of fast text classification.

Then one document at a time, each text in turn by all of them. Medians; CPU seconds per
document from `time.process_time` beside the wall-clock rates; one thread throughout.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fasttext_bench import _train, fasttext_accuracy, prepare

from triage.core.model import TriageModel
from triage.core.pipeline import FEATURES

ROOT = Path(__file__).resolve().parent.parent
REALISTIC = ROOT / "bench" / "data" / "realistic.jsonl"
TRAIN = ROOT / "training" / "data" / "train.jsonl"
TEST = ROOT / "training" / "data" / "test.jsonl"


def _timed(work: Callable[[], object], n: int) -> tuple[float, float]:
    """(docs/s by the wall clock, CPU microseconds per doc) of one run of ``work``."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return n / wall, cpu / n * 1e6


def bench_model(model: TriageModel, repeats: int) -> dict[str, Any]:
    rows = [json.loads(line) for line in REALISTIC.read_text("utf-8").splitlines()]
    texts = [r["text"] for r in rows]
    try:
        fasttext, fasttext_seconds = _train(TRAIN, seed=0)
    except RuntimeError as err:  # not installed
        fasttext, fasttext_seconds = None, 0.0
        print(f"  (fastText reference skipped: {err})")
    pipeline = model.pipeline
    features = pipeline.named_steps[FEATURES]

    def with_sklearn() -> object:
        # the same fitted pipeline through scikit-learn's own transform (class swapped back)
        parts = features.transformer_list
        saved = [type(t) for _, t in parts]
        for (_, t), cls in zip(parts, saved, strict=True):
            t.__class__ = cls.__mro__[1]
        try:
            return pipeline.predict_proba(texts)
        finally:
            for (_, t), cls in zip(parts, saved, strict=True):
                t.__class__ = cls

    runs: dict[str, Callable[[], object]] = {
        "triage": lambda: model.predict(texts),
        "scikit_learn": with_sklearn,
    }
    if fasttext is not None:
        runs["fasttext"] = lambda: fasttext.predict([prepare(t) for t in texts], k=-1)
    for run in runs.values():  # warm: word tables, language detector, first-call costs
        run()
        run()
    batched: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            batched[name].append(_timed(run, len(texts)))

    singles: dict[str, list[float]] = {"triage": [], "fasttext": []}
    single_cpu: dict[str, float] = {"triage": 0.0, "fasttext": 0.0}
    for _ in range(max(1, repeats // 2)):
        for text in texts:
            started, cpu = time.perf_counter(), time.process_time()
            model.predict([text])
            singles["triage"].append((time.perf_counter() - started) * 1e3)
            single_cpu["triage"] += time.process_time() - cpu
            if fasttext is not None:
                started, cpu = time.perf_counter(), time.process_time()
                fasttext.predict(prepare(text), k=-1)
                singles["fasttext"].append((time.perf_counter() - started) * 1e3)
                single_cpu["fasttext"] += time.process_time() - cpu

    result: dict[str, Any] = {
        "texts": len(texts),
        "mean_chars": round(statistics.fmean(map(len, texts))),
    }
    for name, measured in batched.items():
        result[name] = {
            "batch_docs_per_s": statistics.median(r for r, _ in measured),
            "batch_cpu_us_per_doc": statistics.median(c for _, c in measured),
        }
    for name, latencies in singles.items():
        if latencies:
            result[name]["single_p50_ms"] = statistics.median(latencies)
            result[name]["single_p99_ms"] = float(np.percentile(latencies, 99))
            result[name]["single_cpu_us_per_doc"] = single_cpu[name] / len(latencies) * 1e6
    if fasttext is not None:
        result["fasttext"]["train_seconds"] = fasttext_seconds
        result["fasttext"]["test_macro_f1"] = fasttext_accuracy(TRAIN, TEST)
        result["triage_vs_fasttext_batched"] = (
            result["triage"]["batch_docs_per_s"] / result["fasttext"]["batch_docs_per_s"]
        )
    result["triage_vs_scikit_learn_batched"] = (
        result["triage"]["batch_docs_per_s"] / result["scikit_learn"]["batch_docs_per_s"]
    )
    return result


def print_model(r: dict[str, Any]) -> None:
    print(
        f"model speed on {r['texts']} realistic texts (mean {r['mean_chars']:,} characters), "
        "one thread, medians:"
    )
    names = {
        "triage": "triage predict (everything an answer carries)",
        "scikit_learn": "scikit-learn, same pipeline, probabilities only",
        "fasttext": "fastText, word bigrams, same corpus",
    }
    for key, name in names.items():
        if key not in r:
            continue
        m = r[key]
        single = (
            f"; one document p50 {m['single_p50_ms']:.2f} ms, p99 {m['single_p99_ms']:.2f} ms, "
            f"CPU {m['single_cpu_us_per_doc']:,.0f} us"
            if "single_p50_ms" in m
            else ""
        )
        print(
            f"  {name:<50} {m['batch_docs_per_s']:7,.0f} docs/s batched "
            f"(CPU {m['batch_cpu_us_per_doc']:,.0f} us/doc){single}"
        )
    if "triage_vs_fasttext_batched" in r:
        print(
            f"  triage batched = {r['triage_vs_fasttext_batched']:.2f} x fastText's docs/s "
            f"(target >= 0.5); one document p50 {r['triage']['single_p50_ms']:.2f} ms "
            f"(target <= 1.0); fastText's test macro-F1 {r['fasttext']['test_macro_f1']:.3f}"
        )
    print(f"  triage batched = {r['triage_vs_scikit_learn_batched']:.2f} x scikit-learn's")
