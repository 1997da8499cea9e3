"""Score a job's chunks in worker processes on this machine, each loading the model once."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType

from triage.archive.chunk_task import ChunkTask
from triage.archive.executor import PendingChunk
from triage.archive.rows import ArchiveRow
from triage.archive.writers import EncodedChunk
from triage.core.errors import TriageError
from triage.core.model import TriageModel, load_model
from triage.lifeline import Lifeline, die_with_parent


class ProcessExecutor:
    """A pool of ``workers`` processes; two chunks per worker in flight keep each one busy
    while the parent reads and writes."""

    def __init__(self, model_path: Path, workers: int, task: ChunkTask) -> None:
        self._model_path = model_path
        self._workers = workers
        self._task = task
        self._pool: ProcessPoolExecutor | None = None
        self._lifeline: Lifeline | None = None
        self.in_flight = 2 * workers

    def __enter__(self) -> ProcessExecutor:
        context = multiprocessing.get_context("forkserver")
        # The fork server imports scikit-learn once (~2 s); each worker then starts from it
        # already imported instead of importing it again. (No effect if the fork server runs.)
        context.set_forkserver_preload([__name__])
        # Workers (and so the fork server) end with this process even if it is killed: a
        # pool's workers wait for chunks forever otherwise, ~400 MiB each.
        self._lifeline = Lifeline()
        self._pool = ProcessPoolExecutor(
            self._workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(str(self._model_path), self._task, self._lifeline.end),
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # After a failure, the chunks still queued are not worth waiting for.
        pool.shutdown(wait=error is None, cancel_futures=error is not None)
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None
        if isinstance(error, BrokenProcessPool):
            raise TriageError(
                "a scoring worker died or could not load the model (see the log); "
                "rerun with --resume"
            ) from None

    def submit(self, rows: list[ArchiveRow]) -> PendingChunk:
        if self._pool is None:
            raise RuntimeError("submit() outside the executor's with-block")
        return self._pool.submit(_score_in_worker, rows)


_worker: tuple[TriageModel, ChunkTask] | None = None


def _init_worker(model_path: str, task: ChunkTask, lifeline: Connection) -> None:
    # Each worker process verifies and loads the model once, then scores many chunks.
    global _worker
    die_with_parent(lifeline)
    _worker = (load_model(model_path), task)


def _score_in_worker(rows: list[ArchiveRow]) -> EncodedChunk:
    if _worker is None:
        raise RuntimeError("worker process started without its model")
    model, task = _worker
    return task(model, rows)
