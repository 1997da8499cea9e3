"""The interface a scoring job hands its chunks to; its simplest form scores in this process."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol

from triage.archive.chunk_task import ChunkTask
from triage.archive.rows import ArchiveRow
from triage.archive.writers import EncodedChunk
from triage.core.model import TriageModel, load_model


class PendingChunk(Protocol):
    """A submitted chunk; ``result`` waits for it (a ``concurrent.futures`` or Dask future)."""

    def result(self) -> EncodedChunk: ...


class ChunkExecutor(Protocol):
    """Where a job's chunks are scored: this process, worker processes or a Dask cluster.

    Entered once per run (starting its workers, each loading the model once), then given every
    chunk through ``submit``; ``in_flight`` is how many chunks to keep submitted so that no
    worker waits. Leaving it stops the workers; a failure of the workers themselves leaves it as
    a :class:`TriageError` that says so.
    """

    in_flight: int

    def __enter__(self) -> ChunkExecutor: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def submit(self, rows: list[ArchiveRow]) -> PendingChunk: ...


class _Done:
    def __init__(self, chunk: EncodedChunk) -> None:
        self._chunk = chunk

    def result(self) -> EncodedChunk:
        return self._chunk


class InProcessExecutor:
    """Scores each chunk as it is submitted, in the calling process (one worker: no pool to
    start, no rows to pickle)."""

    in_flight = 1

    def __init__(self, model_path: Path, task: ChunkTask) -> None:
        self._model_path = model_path
        self._task = task
        self._model: TriageModel | None = None

    def __enter__(self) -> InProcessExecutor:
        self._model = load_model(self._model_path)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._model = None

    def submit(self, rows: list[ArchiveRow]) -> PendingChunk:
        if self._model is None:
            raise RuntimeError("submit() outside the executor's with-block")
        return _Done(self._task(self._model, rows))
