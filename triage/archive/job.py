"""Run a scoring job over an archive: chunks scored by an executor, written in input order,
checkpointed, resumable."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from triage.archive.chunk_task import ChunkTask
from triage.archive.executor import ChunkExecutor, InProcessExecutor, PendingChunk
from triage.archive.readers import ArchiveSpec, expand_inputs, read_archive
from triage.archive.row_decisions import RunDecisions, new_run_id
from triage.archive.rows import ArchiveRow
from triage.archive.run_record import RecordSettings, RunRecord
from triage.archive.summary import ScoreSummary
from triage.archive.writers import (
    RESUME_HINT,
    Checkpoint,
    EncodedChunk,
    OutputShape,
    ResultSink,
    output_format,
)
from triage.core.artifacts import ModelCard, verified_card
from triage.core.errors import DataFileError, TriageError
from triage.core.scoring import chunked

PROGRESS_VERSION = 1
RECORDING = "recording of decisions (--record)"  # the identity key; absent from older files
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
    segments: bool = False  # one output row per item of a document of several
    resume: bool = False
    overwrite: bool = False
    dask_scheduler: str | None = None  # "local" or tcp://host:8786; None: this machine only
    record: RecordSettings | None = None  # None: no decision record is opened


def progress_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def run_score_job(job: ScoreJob, progress: Progress | None = None) -> ScoreSummary:
    """Score every row of the archive into ``job.output``; see the README for the guarantees.

    The archive is read here, chunk by chunk, whatever the executor: workers get the rows with
    the task and send back encoded chunks, which are written here in input order.

    With ``job.record``, each chunk's decisions are put on the record after the chunk is written
    and before its checkpoint is saved, under ids made from the run's id (kept in the progress
    file) and the row's number: rows a resumed run scores again get the ids they had, so the
    record keeps each row's decision once.
    """
    started = time.perf_counter()
    fmt = output_format(job.output)
    # Only the card here (its artifact's sha256 checked, nothing unpickled): the executor's
    # workers verify and load the model themselves.
    card = verified_card(job.model_path)
    state_path = progress_path_for(job.output)
    identity = _identity(job, card, fmt)
    summary, checkpoint, run_id = _prepare(job, state_path, identity)
    summary.model_version = card.version
    rows = islice(read_archive(job.archive), summary.rows, None)  # skip what is already done
    task = ChunkTask(fmt, job.explain_terms, record=job.record is not None, segments=job.segments)
    # Opened (a store that cannot be used refused) before any worker starts; closed last, after
    # the output is complete and the workers are gone, so that draining it holds up nothing.
    record = _run_record(job, card, run_id)
    with record or nullcontext():
        with _executor(job, card, task) as executor:
            if not job.resume:
                # Saved before OUTPUT is created, so that whatever fails from here on (a full disk
                # included) leaves a run that --resume continues, even before its first chunk.
                _save_state(state_path, identity, summary, checkpoint, run_id, first=True)
            sink = ResultSink(
                job.output,
                card.labels,
                OutputShape(with_terms=job.explain_terms > 0, segments=job.segments),
                resume_from=checkpoint if job.resume else None,
            )
            try:
                for chunk in _in_input_order(executor, chunked(rows, job.chunk_size)):
                    checkpoint = sink.write(chunk)
                    if record is not None:
                        record.record(chunk, first_row=summary.rows)
                    summary.add(chunk)
                    _save_state(state_path, identity, summary, checkpoint, run_id)
                    if progress:
                        progress(chunk.rows)
            except BaseException:
                sink.abort()
                raise
            sink.finish()
        state_path.unlink(missing_ok=True)
        if record is not None:
            summary.record = record.finish()
    summary.seconds = time.perf_counter() - started
    summary.output = str(job.output)
    summary.errors_file = str(sink.errors_path) if summary.errors else None
    return summary


def _run_record(job: ScoreJob, card: ModelCard, run_id: str) -> RunRecord | None:
    if job.record is None:
        return None
    decisions = RunDecisions(run_id, card.version, tuple(card.labels), job.record.caller)
    return RunRecord(job.record, decisions)


def _executor(job: ScoreJob, card: ModelCard, task: ChunkTask) -> ChunkExecutor:
    if job.dask_scheduler is not None:
        from triage.archive.dask_executor import DaskExecutor

        return DaskExecutor(job.dask_scheduler, job.workers, job.model_path, card, task)
    if job.workers > 1:
        from triage.archive.process_executor import ProcessExecutor

        return ProcessExecutor(job.model_path, job.workers, task)
    return InProcessExecutor(job.model_path, task)


def _in_input_order(
    executor: ChunkExecutor, chunks: Iterable[list[ArchiveRow]]
) -> Iterator[EncodedChunk]:
    """Encoded chunks in input order, with at most ``executor.in_flight`` submitted at once
    (so memory stays bounded however fast the archive is read)."""
    pending: deque[PendingChunk] = deque()
    for chunk in chunks:
        pending.append(executor.submit(chunk))
        if len(pending) >= executor.in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _prepare(
    job: ScoreJob, state_path: Path, identity: dict[str, Any]
) -> tuple[ScoreSummary, Checkpoint, str]:
    """Where the run starts: its summary so far, its checkpoint and its run id (a new run's, or
    the interrupted run's for --resume)."""
    if job.resume:
        if not state_path.exists():
            raise TriageError(
                f"nothing to resume: {state_path} is missing (the run finished, or never started)"
            )
        unreadable = DataFileError(
            state_path,
            "unreadable progress file: start again without --resume (and with --overwrite)",
        )
        try:
            state = json.loads(state_path.read_text())
            recorded = dict(state["identity"])
        except (OSError, ValueError, KeyError, TypeError):
            raise unreadable from None
        recorded.setdefault(RECORDING, False)  # written before runs could record
        for key, value in identity.items():
            if recorded.get(key) != value:
                raise TriageError(
                    f"cannot resume {job.output}: its {key} changed since the interrupted run; "
                    "start again without --resume (and with --overwrite)"
                )
        try:
            summary = ScoreSummary.resumed(state["summary"])
            checkpoint = Checkpoint(**state["checkpoint"])
            # A file written before runs had ids: none of its decisions were recorded.
            run_id = str(uuid.UUID(state.get("run") or new_run_id()))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise unreadable from None
        return summary, checkpoint, run_id
    if (job.output.exists() or state_path.exists()) and not job.overwrite:
        hint = "--resume to continue it" if state_path.exists() else "--overwrite to replace it"
        raise TriageError(f"{job.output} exists: use {hint}")
    return ScoreSummary(), Checkpoint(), new_run_id()


def _identity(job: ScoreJob, card: ModelCard, fmt: str) -> dict[str, Any]:
    """What must not change between a run and its resumption (the executor may: a run started
    on Dask can be finished on this machine, and back)."""
    files = [
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p, _ in expand_inputs(job.archive.inputs)
    ]
    return {
        "format": PROGRESS_VERSION,
        "inputs": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
        "columns": [job.archive.text_column, job.archive.id_column],
        "model": card.artifact.sha256,
        "output format": fmt,
        "explanation terms": job.explain_terms,
        "segments": job.segments,
        RECORDING: job.record is not None,
    }


def _save_state(
    path: Path,
    identity: dict[str, Any],
    summary: ScoreSummary,
    checkpoint: Checkpoint,
    run_id: str,
    first: bool = False,
) -> None:
    state = {
        "identity": identity,
        "run": run_id,
        "summary": summary.counts(),
        "checkpoint": vars(checkpoint),
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the state always describes complete, synced output
    except OSError as err:
        tmp.unlink(missing_ok=True)
        # The previous state (if any) is untouched, and still true of the output.
        hint = "fix that, then rerun" if first else RESUME_HINT
        raise DataFileError(path, f"cannot write ({err.strerror or err}); {hint}") from None
