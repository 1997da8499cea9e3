"""Batch-scoring benchmark: `triage score` throughput and peak memory against in-memory predict."""

from __future__ import annotations

import csv
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from triage.core.model import TriageModel

# Runs `triage score` as a child and prints the largest resident set of any process under it
# (the scoring process or one of its workers), in KiB, on the last line.
_MEASURE = (
    "import resource, subprocess, sys;"
    "code = subprocess.run(sys.argv[1:]).returncode;"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.exit(code)"
)


def make_archive(texts: list[str], rows: int, path: Path, seed: int = 0) -> Path:
    """A CSV archive of ``rows`` reports sampled (with replacement) from the corpus."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([f"a{i}", rng.choice(texts)])
    return path


def in_memory_rate(model: TriageModel, texts: list[str], repeats: int) -> float:
    """Single-process batched predict docs/s (no explanations, as `triage score` by default)."""
    rng = random.Random(1)
    sample = [rng.choice(texts) for _ in range(4_000)]
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(sample, top_k=0)
        rates.append(len(sample) / (time.perf_counter() - started))
    return statistics.median(rates)


def _predict_alongside(model_path: str, sample: list[str], start: Any, rates: Any) -> None:
    from triage.core.model import load_model

    model = load_model(model_path)
    model.predict(sample[:200], top_k=0)  # warm
    start.wait()
    started = time.perf_counter()
    model.predict(sample, top_k=0)
    rates.put(len(sample) / (time.perf_counter() - started))


def parallel_in_memory_rate(model_path: Path, texts: list[str], processes: int) -> float:
    """Total docs/s of ``processes`` in-memory predictors started together, one per core: what
    the hardware gives when every core is busy (shared caches and memory bandwidth), with no
    file reading, writing or hand-off at all."""
    context = multiprocessing.get_context("forkserver")
    rng = random.Random(2)
    sample = [rng.choice(texts) for _ in range(4_000)]
    start, rates = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_predict_alongside, args=(str(model_path), sample, start, rates))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    total = sum(rates.get(timeout=600) for _ in workers)
    for w in workers:
        w.join()
    return float(total)


def run_score(
    archive: Path, model_path: Path, workers: int, out_dir: Path, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    out = out_dir / f"scored-{workers}-{archive.stem}.csv"
    command = [
        sys.executable,
        "-c",
        _MEASURE,
        sys.executable,
        "-m",
        "triage",
        "score",
        str(archive),
        "--out",
        str(out),
        "--model",
        str(model_path),
        "--workers",
        str(workers),
        "--quiet",
        "--overwrite",
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    rows = sum(1 for _ in out.open(encoding="utf-8")) - 1
    out.unlink()
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mib": int(done.stdout.split()[-1]) / 1024,
    }


def bench_batch(
    model: TriageModel, model_path: Path, texts: list[str], rows: int, big_rows: int, repeats: int
) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"cores": cores, "rows": rows}
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        work = Path(tmp)
        archive = make_archive(texts, rows, work / "archive.csv")
        result["in_memory_docs_per_s"] = in_memory_rate(model, texts, repeats)
        for workers in sorted({1, cores}):
            runs = [
                run_score(archive, model_path, workers, work) for _ in range(max(1, repeats // 2))
            ]
            result[f"workers_{workers}"] = {
                "rows_per_s": statistics.median(r["rows_per_s"] for r in runs),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                "runs": runs,
            }
        ceiling = cores * result["in_memory_docs_per_s"]
        result["all_cores_vs_target_ceiling"] = result[f"workers_{cores}"]["rows_per_s"] / ceiling
        result["parallel_in_memory_docs_per_s"] = statistics.median(
            parallel_in_memory_rate(model_path, texts, cores) for _ in range(max(1, repeats // 2))
        )
        if big_rows:
            big = make_archive(texts, big_rows, work / "archive-big.csv")
            result["big"] = run_score(big, model_path, cores, work)
            result["big"]["rows_requested"] = big_rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["bench_process_peak_rss_mib"] = peak
    return result
