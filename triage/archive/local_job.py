"""Run a scoring job over an archive: worker processes, ordered chunked output, resume."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from triage.archive.readers import ArchiveRow, ArchiveSpec, expand_inputs, read_archive
from triage.archive.writers import Checkpoint, EncodedChunk, ResultSink, encode_chunk, output_format
from triage.core.artifacts import ModelCard, verified_card
from triage.core.errors import TriageError
from triage.core.model import TriageModel, load_model
from triage.core.scoring import Report, chunked, score_reports

PROGRESS_VERSION = 1
Progress = Callable[[int], None]  # called with the number of input rows just finished


@dataclass(frozen=True)
class ScoreJob:
    """One `triage score` run, as the CLI builds it."""

    archive: ArchiveSpec
    output: Path
    model_path: Path
    workers: int = 1
    chunk_size: int = 500
    explain_terms: int = 0
    resume: bool = False
    overwrite: bool = False


@dataclass
class ScoreSummary:
    """What a run did (the resumed part included)."""

    rows: int = 0
    scored: int = 0
    errors: int = 0
    needs_review: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    resumed_from: int = 0
    output: str = ""
    errors_file: str | None = None  # where bad rows went (local runs)
    errors_column: str | None = None  # or the output column that holds them (Dask runs)
    model_version: str = ""

    @property
    def rows_per_s(self) -> float:
        return (self.rows - self.resumed_from) / self.seconds if self.seconds else 0.0

    def add(self, chunk: EncodedChunk) -> None:
        self.rows += chunk.rows
        self.errors += len(chunk.errors)
        self.scored += chunk.rows - len(chunk.errors)
        self.needs_review += chunk.needs_review
        self.labels.update(chunk.labels)


def progress_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def run_score_job(job: ScoreJob, progress: Progress | None = None) -> ScoreSummary:
    """Score every row of the archive into ``job.output``; see the README for the guarantees."""
    started = time.perf_counter()
    fmt = output_format(job.output)
    # With worker processes the parent only needs the card: it checks the artifact's sha256
    # (no unpickling), and each worker verifies and loads the model itself.
    model = load_model(job.model_path) if job.workers <= 1 else None
    card = model.card if model is not None else verified_card(job.model_path)
    state_path = progress_path_for(job.output)
    identity = _identity(job, card, fmt)
    summary, checkpoint = _prepare(job, state_path, identity)
    summary.model_version = card.version
    sink = ResultSink(
        job.output,
        card.labels,
        job.explain_terms > 0,
        resume_from=checkpoint if job.resume else None,
    )
    rows = islice(read_archive(job.archive), summary.rows, None)  # skip what is already done
    chunks = chunked(rows, job.chunk_size)
    try:
        for chunk in _score_in_order(chunks, job, model, fmt):
            checkpoint = sink.write(chunk)
            summary.add(chunk)
            _save_state(state_path, identity, summary, checkpoint)
            if progress:
                progress(chunk.rows)
    except BaseException:
        sink.abort()
        raise
    sink.finish()
    state_path.unlink()
    summary.seconds = time.perf_counter() - started
    summary.output = str(job.output)
    summary.errors_file = str(sink.errors_path) if summary.errors else None
    return summary


def _prepare(
    job: ScoreJob, state_path: Path, identity: dict[str, Any]
) -> tuple[ScoreSummary, Checkpoint]:
    if job.resume:
        if not state_path.exists():
            raise TriageError(
                f"nothing to resume: {state_path} is missing (the run finished, or never started)"
            )
        state = json.loads(state_path.read_text())
        for key, value in identity.items():
            if state["identity"].get(key) != value:
                raise TriageError(
                    f"cannot resume {job.output}: its {key} changed since the interrupted run; "
                    "start again without --resume (and with --overwrite)"
                )
        s = state["summary"]
        summary = ScoreSummary(
            rows=s["rows"],
            scored=s["scored"],
            errors=s["errors"],
            needs_review=s["needs_review"],
            labels=Counter(s["labels"]),
            resumed_from=s["rows"],
        )
        return summary, Checkpoint(**state["checkpoint"])
    if (job.output.exists() or state_path.exists()) and not job.overwrite:
        hint = "--resume to continue it" if state_path.exists() else "--overwrite to replace it"
        raise TriageError(f"{job.output} exists: use {hint}")
    return ScoreSummary(), Checkpoint()


def _identity(job: ScoreJob, card: ModelCard, fmt: str) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    files = [
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p, _ in expand_inputs(job.archive.inputs)
    ]
    return {
        "format": PROGRESS_VERSION,
        "inputs": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
        "columns": [job.archive.text_column, job.archive.id_column],
        "model": card.document["artifact"]["sha256"],
        "output format": fmt,
        "explanation terms": job.explain_terms,
    }


def _save_state(
    path: Path, identity: dict[str, Any], summary: ScoreSummary, checkpoint: Checkpoint
) -> None:
    state = {
        "identity": identity,
        "summary": {
            "rows": summary.rows,
            "scored": summary.scored,
            "errors": summary.errors,
            "needs_review": summary.needs_review,
            "labels": dict(summary.labels),
        },
        "checkpoint": vars(checkpoint),
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # the state always describes complete, synced output


def _score_in_order(
    chunks: Iterator[list[ArchiveRow]], job: ScoreJob, model: TriageModel | None, fmt: str
) -> Iterator[EncodedChunk]:
    """Encoded chunks in input order; with several workers, at most 2 per worker in flight."""
    if model is not None:
        for chunk in chunks:
            yield _encode(model, chunk, fmt, job.explain_terms)
        return
    context = multiprocessing.get_context("forkserver")
    # The fork server imports scikit-learn once (~2 s); each worker then starts from it already
    # imported instead of importing it again. (No effect if the fork server already runs.)
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(
        job.workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(str(job.model_path), fmt, job.explain_terms),
    ) as pool:
        pending: deque[Future[EncodedChunk]] = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_worker_score, chunk))
                if len(pending) >= 2 * job.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise TriageError(
                "a scoring worker died or could not load the model (see the log); "
                "rerun with --resume"
            ) from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _encode(model: TriageModel, chunk: list[ArchiveRow], fmt: str, terms: int) -> EncodedChunk:
    reports = [
        Report(text=r.text, report_id=r.id, top_terms=terms, problem=r.problem) for r in chunk
    ]
    return encode_chunk(chunk, score_reports(model, reports), model.labels, fmt, terms > 0)


_worker: tuple[TriageModel, str, int] | None = None


def _init_worker(model_path: str, fmt: str, terms: int) -> None:
    # Each worker process verifies and loads the model once, then scores many chunks.
    global _worker
    _worker = (load_model(model_path), fmt, terms)


def _worker_score(chunk: list[ArchiveRow]) -> EncodedChunk:
    if _worker is None:
        raise RuntimeError("worker process started without its model")
    model, fmt, terms = _worker
    return _encode(model, chunk, fmt, terms)
