"""fastText as a speed and accuracy reference for the triage model.

fastText's supervised classifier is the usual yardstick for "fast text classification", so the
triage model's predict figures mean more when shown beside it on the same texts and machine.
This module trains a fastText model on the same JSON-lines training file and measures:

- batched throughput: docs/s of one ``predict(list_of_texts, k=-1)`` call over all texts,
  the median over repeats, with CPU-seconds per doc from ``time.process_time``;
- one-document latency: p50 and p99 in milliseconds of predicting one text at a time
  (``time.perf_counter``), over all texts, repeated, with CPU-seconds per doc as well;
- training seconds, and the number and mean length of the texts measured;
- (``fasttext_accuracy``) macro-F1 on a labelled test file, so a reader can see that the
  reference is a fair one and not a fast model that gets the answers wrong.

Everything runs on one thread (fastText trains with ``thread=1``; its predict is serial), as
the triage model's in-process figures are. Text preparation (lower-casing, folding newlines and
runs of whitespace into single spaces) is inside every timed part, because the triage model's
predict normalises its input too.

fastText is an optional dependency: ``pip install -e '.[bench]'``. It is imported only inside
the functions, so this module imports without it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_LABEL_PREFIX = "__label__"

# Sensible supervised settings for a few thousand short reports: word bigrams, a high learning
# rate with enough epochs to converge, a small embedding. thread=1 keeps training (with a fixed
# seed) deterministic and matches the single-thread measurement.
SETTINGS: dict[str, Any] = {
    "lr": 0.5,
    "epoch": 25,
    "wordNgrams": 2,
    "dim": 50,
    "minCount": 1,
    "loss": "softmax",
    "thread": 1,
    "verbose": 0,
}


def _import_fasttext() -> ModuleType:
    try:
        return importlib.import_module("fasttext")
    except ImportError as error:
        raise RuntimeError(
            "fastText is not installed; the fastText reference benchmark needs it: "
            "pip install -e '.[bench]'"
        ) from error


def prepare(text: str) -> str:
    """The text as fastText reads it: lower-cased, all whitespace (newlines too) one space."""
    return " ".join(text.lower().split())


def _read_jsonl(path: Path) -> list[tuple[str, str]]:
    """The (text, label) pairs of a JSON-lines file whose lines hold "text" and "label"."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                rows.append((str(record["text"]), str(record["label"])))
    return rows


def _label_token(label: str) -> str:
    return _LABEL_PREFIX + "_".join(label.split())


def _train(train_jsonl: Path, seed: int) -> tuple[Any, float]:
    """A fastText model trained on ``train_jsonl``, and the seconds training took."""
    fasttext = _import_fasttext()
    rows = _read_jsonl(train_jsonl)
    if not rows:
        raise ValueError(f"no training rows in {train_jsonl}")
    settings = dict(SETTINGS)
    defaults = getattr(getattr(fasttext, "FastText", None), "unsupervised_default", {})
    if "seed" in defaults:  # the seed option came with fastText 0.9.2
        settings["seed"] = seed
    with tempfile.TemporaryDirectory(prefix="fasttext-bench-") as tmp:
        train_txt = Path(tmp) / "train.txt"
        with train_txt.open("w", encoding="utf-8") as f:
            for text, label in rows:
                f.write(f"{_label_token(label)} {prepare(text)}\n")
        started = time.perf_counter()
        model = fasttext.train_supervised(input=str(train_txt), **settings)
        seconds = time.perf_counter() - started
    return model, seconds


def _percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 <= q <= 1), as bench/run.py computes it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_fasttext(
    train_jsonl: Path, texts: list[str], repeats: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Train fastText on ``train_jsonl`` and time its predict on ``texts`` (see the module doc).

    Raises RuntimeError when fastText is not installed.
    """
    if not texts:
        raise ValueError("texts is empty: nothing to measure")
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    model, train_seconds = _train(train_jsonl, seed)
    model.predict(prepare(texts[0]), k=-1)  # warm-up: first-call costs are not predict's

    batch_rates: list[float] = []
    batch_cpu: list[float] = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        labels, _probabilities = model.predict([prepare(text) for text in texts], k=-1)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        if len(labels) != len(texts):
            raise RuntimeError("fastText returned a different number of predictions")
        batch_rates.append(len(texts) / wall)
        batch_cpu.append(cpu / len(texts))

    latencies: list[float] = []
    single_cpu: list[float] = []
    for _ in range(repeats):
        cpu = time.process_time()
        for text in texts:
            started = time.perf_counter()
            model.predict(prepare(text), k=-1)
            latencies.append(time.perf_counter() - started)
        single_cpu.append((time.process_time() - cpu) / len(texts))

    return {
        "fasttext_version": _fasttext_version(),
        "settings": {**SETTINGS, "seed": seed},
        "threads": 1,
        "train_seconds": train_seconds,
        "n_texts": len(texts),
        "mean_chars": statistics.fmean(len(text) for text in texts),
        "mean_words": statistics.fmean(len(text.split()) for text in texts),
        "repeats": repeats,
        "batch_docs_per_s": statistics.median(batch_rates),
        "batch_docs_per_s_runs": batch_rates,
        "batch_cpu_s_per_doc": statistics.median(batch_cpu),
        "single_p50_ms": _percentile(latencies, 0.50) * 1000,
        "single_p99_ms": _percentile(latencies, 0.99) * 1000,
        "single_cpu_s_per_doc": statistics.median(single_cpu),
    }


def fasttext_accuracy(train_jsonl: Path, test_jsonl: Path, seed: int = 0) -> float:
    """Macro-F1 on ``test_jsonl`` of a fastText model trained as in :func:`bench_fasttext`."""
    from sklearn.metrics import f1_score

    test = _read_jsonl(test_jsonl)
    if not test:
        raise ValueError(f"no test rows in {test_jsonl}")
    model, _seconds = _train(train_jsonl, seed)
    labels, _probabilities = model.predict([prepare(text) for text, _label in test], k=1)
    predicted = [top[0].removeprefix(_LABEL_PREFIX) for top in labels]
    expected = [_label_token(label).removeprefix(_LABEL_PREFIX) for _text, label in test]
    return float(f1_score(expected, predicted, average="macro"))


def _fasttext_version() -> str:
    from importlib import metadata

    for distribution in ("fasttext-numpy2-wheel", "fasttext-numpy2", "fasttext-wheel", "fasttext"):
        try:
            return f"{distribution} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures (numbers only, never report text) as JSON."""
    root = Path(__file__).resolve().parent.parent
    data = root / "training" / "data"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--train", type=Path, default=data / "train.jsonl")
    parser.add_argument("--test", type=Path, default=data / "test.jsonl")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    texts = [text for text, _label in _read_jsonl(args.test)]
    try:
        result = bench_fasttext(args.train, texts, repeats=args.repeats, seed=args.seed)
        result["test_macro_f1"] = fasttext_accuracy(args.train, args.test, seed=args.seed)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
