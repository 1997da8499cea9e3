"""Score a job's chunks on a Dask cluster, the model scattered once to every worker."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from triage.archive.chunk_task import ChunkTask
from triage.archive.executor import PendingChunk
from triage.archive.rows import ArchiveRow
from triage.archive.writers import EncodedChunk
from triage.core.artifacts import ModelCard, verify_artifact
from triage.core.errors import TriageError
from triage.core.model import TriageModel, load_model_bytes

INSTALL_HINT = "--dask needs the Dask extra: pip install 'triage[dask]'"


@dataclass(frozen=True)
class ModelBlob:
    """The artifact as bytes: scattered to every worker once, verified there before loading."""

    card: ModelCard
    model: bytes


class DaskExecutor:
    """A Dask client: ``scheduler`` is "local" (a cluster of ``workers`` processes started here,
    one thread each) or the address of a running scheduler (tcp://host:8786).

    The rows travel with each task, so workers need this package installed but no access to the
    input files; two chunks per worker thread are kept in flight.
    """

    def __init__(
        self, scheduler: str, workers: int, model_path: Path, card: ModelCard, task: ChunkTask
    ) -> None:
        self._scheduler = scheduler
        self._workers = workers
        self._model_path = model_path
        self._card = card
        self._task = task
        self._cluster: Any = None
        self._client: Any = None
        self._model: Any = None  # the scattered blob's future
        self.in_flight = 2

    def __enter__(self) -> DaskExecutor:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise TriageError(INSTALL_HINT) from None
        blob = _blob(self._model_path, self._card)  # refused here, before touching the cluster
        if self._scheduler == "local":
            # ":0": any free port for the scheduler's HTTP endpoint (None still binds 8787).
            self._cluster = LocalCluster(
                n_workers=self._workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
            self._client = Client(self._cluster, set_as_default=False)
        else:
            self._client = Client(self._scheduler, set_as_default=False)
        try:
            self._model = self._client.scatter(blob, broadcast=True)  # once per worker
            self.in_flight = 2 * max(1, sum(self._client.nthreads().values()))
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            raise TriageError(
                "Dask workers kept dying while scoring a chunk (see the worker logs); "
                "rerun with --resume"
            ) from None

    def submit(self, rows: list[ArchiveRow]) -> PendingChunk:
        if self._client is None:
            raise RuntimeError("submit() outside the executor's with-block")
        # pure=False: no need to hash every chunk's rows for a task key.
        future: PendingChunk = self._client.submit(
            _score_on_worker, self._model, self._task, rows, pure=False
        )
        return future

    def _close(self) -> None:
        # Closing the client releases its tasks; a cluster started here is stopped with it.
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _blob(model_path: Path, card: ModelCard) -> ModelBlob:
    # The bytes shipped are checked against the card the job checked, not re-read from disk.
    model_file = model_path / card.artifact.file
    data = model_file.read_bytes()
    verify_artifact(card, hashlib.sha256(data).hexdigest(), str(model_file))
    return ModelBlob(card, data)


_models: dict[str, TriageModel] = {}
_loading = threading.Lock()


def _model(blob: ModelBlob) -> TriageModel:
    # One verified, unpickled model per worker process, whatever number of tasks (or threads)
    # it runs.
    sha = blob.card.artifact.sha256
    with _loading:
        if sha not in _models:
            _models[sha] = load_model_bytes(blob.card, blob.model)
        return _models[sha]


def _score_on_worker(blob: ModelBlob, task: ChunkTask, rows: list[ArchiveRow]) -> EncodedChunk:
    return task(_model(blob), rows)
