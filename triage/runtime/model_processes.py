"""Model worker processes: each holds the model and scores the batches sent to it over a pipe."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from triage.core.artifacts import ModelCard, read_card
from triage.core.errors import ModelLoadError, ModelUnavailable
from triage.core.model import TriageModel, load_model
from triage.core.scoring import Outcome, Report, accept_all, score_reports
from triage.runtime.live import WARMUP_TEXTS, ReloadResult

log = logging.getLogger(__name__)
START_SECONDS = 120.0  # a worker that is not ready by then is treated as failed


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (its type varies with the start method)
    conn: Connection


class ModelWorkerPool:
    """N model processes behind one front process, one lane (a lock and a pipe) per process.

    - ``score(lane, reports)`` runs one batch on that lane's process.
    - A process that dies fails only the batch it held (UNAVAILABLE to those callers); the lane
      starts a fresh process on the current model before its next batch.
    - ``reload()`` is two-phase: every process loads and verifies the new model beside the old
      one (lane by lane, so the other lanes keep scoring), and only when all have it do they all
      switch at once; if any refuses it, all drop it and the old model keeps serving.
    - With ``quiet_lane``, this process keeps a copy of the model too, as one extra lane
      (:attr:`quiet_lane`) for a call that arrives when nothing else is in flight: it is scored
      on the caller's own thread, without the round trip to a model process that has gone idle
      (~0.3 ms to wake it on this kind of machine, plus its cold caches). It costs one more copy
      of the model's private memory; under load the batcher never uses it.
    """

    def __init__(self, path: Path, size: int, quiet_lane: bool = False) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one process")
        self.path = Path(path)
        self.lanes = size
        self.quiet_lane: int | None = size if quiet_lane else None
        self._local: TriageModel | None = None  # the quiet lane's model
        self._context = multiprocessing.get_context("forkserver")
        # Imported once in the fork server, so a model process (a restart too) skips the ~2 s
        # import of scikit-learn. (No effect if the fork server already runs.)
        self._context.set_forkserver_preload([__name__])
        self._locks = [threading.Lock() for _ in range(size + 1)]  # the last: the quiet lane
        self._workers: list[_Worker | None] = [None] * size
        self._reload_lock = threading.Lock()
        self._source: Path | None = None
        self._card: ModelCard | None = None
        self.restarts = 0

    # -- the engine interface shared with LiveModel -------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._card is not None

    @property
    def card(self) -> ModelCard:
        if self._card is None:
            raise ModelUnavailable("no model is loaded yet; retry shortly")
        return self._card

    def score(self, lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]:
        if lane == self.quiet_lane:
            with self._locks[lane]:
                local = self._local
                if local is None:
                    raise ModelUnavailable("no model is loaded yet; retry shortly")
                return local.version, score_reports(local, reports, accept_all)
        with self._locks[lane]:
            worker = self._ensure(lane)
            try:
                worker.conn.send(("score", list(reports)))
                reply = worker.conn.recv()
            except (EOFError, OSError):
                self._discard(lane)
                raise ModelUnavailable(
                    "the model process scoring this report stopped; it is being restarted, retry"
                ) from None
        if reply[0] != "ok":
            raise RuntimeError(f"model process failed: {reply[1]}")
        return reply[1], reply[2]

    def reload(self) -> ReloadResult:
        with self._reload_lock:
            resolved = self.path.resolve()
            card = read_card(resolved)  # cheap; the workers verify the artifact themselves
            previous = self._card
            if previous is not None and self._source == resolved and _sha(previous) == _sha(card):
                return ReloadResult(previous.version, previous.version, changed=False)
            if previous is None:
                self._source, self._card = resolved, card
                for lane in range(self.lanes):
                    with self._locks[lane]:
                        self._ensure(lane)
                if self.quiet_lane is not None:
                    self._local = _load(str(resolved))
                return ReloadResult(None, card.version, changed=True)
            self._two_phase_switch(resolved)
            self._source, self._card = resolved, card
            log.info(
                "model %s now serving in %d processes (was %s)",
                card.version,
                self.lanes,
                previous.version,
            )
            return ReloadResult(previous.version, card.version, changed=True)

    def changed_on_disk(self) -> bool:
        return self._source is None or self.path.resolve() != self._source

    def close(self) -> None:
        for lane in range(self.lanes):
            with self._locks[lane]:
                worker = self._workers[lane]
                if worker is not None:
                    with contextlib.suppress(OSError):  # already gone: nothing to tell
                        worker.conn.send(("stop",))
                    worker.process.join(10)
                    if worker.process.is_alive():
                        worker.process.kill()
                        worker.process.join()
                    worker.conn.close()
                    self._workers[lane] = None
        self._local = None

    # -- for operators and tests ----------------------------------------------------------------
    def pids(self) -> list[int | None]:
        return [w.process.pid if w is not None else None for w in self._workers]

    # -- internals ------------------------------------------------------------------------------
    def _two_phase_switch(self, resolved: Path) -> None:
        prepared: list[int] = []
        failure: str | None = None
        for lane in range(self.lanes):
            with self._locks[lane]:
                reply = self._ask(lane, ("prepare", str(resolved)))
            if reply[0] != "prepared":
                failure = str(reply[1])
                break
            prepared.append(lane)
        local: TriageModel | None = None
        if failure is None and self.quiet_lane is not None:
            try:
                local = _load(str(resolved))
            except Exception as err:  # refused here: refused everywhere
                failure = str(err)
        if failure is not None:
            for lane in prepared:
                with self._locks[lane]:
                    self._ask(lane, ("abort",))
            raise ModelLoadError(failure)
        # Every lane at once: no batch runs during the switch, so no caller can see the new
        # model from one lane and then the old one from another.
        with contextlib.ExitStack() as held:
            for lock in self._locks:
                held.enter_context(lock)
            self._source = resolved  # a process restarted from here on loads the new model
            for lane in range(self.lanes):
                self._ask(lane, ("commit",))
            if local is not None:
                self._local = local

    def _ask(self, lane: int, message: tuple[Any, ...]) -> tuple[Any, ...]:
        worker = self._ensure(lane)
        try:
            worker.conn.send(message)
            reply: tuple[Any, ...] = worker.conn.recv()
        except (EOFError, OSError):
            self._discard(lane)
            return ("error", "model process stopped during reload")
        return reply

    def _ensure(self, lane: int) -> _Worker:
        """The lane's live process, starting one on the current model if needed (lock held)."""
        worker = self._workers[lane]
        if worker is not None and worker.process.is_alive():
            return worker
        if worker is not None:
            self._discard(lane)
        if self._source is None:
            raise ModelUnavailable("no model is loaded yet; retry shortly")
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, str(self._source)),
            name=f"triage-model-{lane}",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(START_SECONDS):
            process.kill()
            raise ModelUnavailable("a model process did not start in time")
        try:
            reply = parent.recv()
        except EOFError:
            reply = ("error", "model process exited while loading")
        if reply[0] != "ready":
            process.join(5)
            raise ModelLoadError(f"model process could not load {self._source}: {reply[1]}")
        if worker is not None:
            self.restarts += 1
            log.warning("model process %d restarted (pid %s)", lane, process.pid)
        self._workers[lane] = _Worker(process, parent)
        return self._workers[lane]  # type: ignore[return-value]

    def _discard(self, lane: int) -> None:
        worker = self._workers[lane]
        self._workers[lane] = None
        if worker is not None:
            worker.conn.close()
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(5)


def _worker_main(conn: Connection, path: str) -> None:
    """A model process: load, report ready, then answer messages until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front process decides when to stop:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and exits when the front's pipe closes
    try:
        current = _load(path)
    except Exception as err:
        conn.send(("error", str(err)))
        return
    conn.send(("ready", current.version, os.getpid()))
    pending: TriageModel | None = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the front process is gone
        kind = message[0]
        try:
            if kind == "score":
                conn.send(("ok", current.version, score_reports(current, message[1], accept_all)))
            elif kind == "prepare":
                pending = _load(message[1])
                conn.send(("prepared", pending.version))
            elif kind == "commit" and pending is not None:
                current, pending = pending, None
                conn.send(("committed", current.version))
            elif kind == "abort":
                pending = None
                conn.send(("aborted",))
            elif kind == "stop":
                return
            else:
                conn.send(("error", f"unexpected message {kind!r}"))
        except Exception as err:
            conn.send(("error", f"{type(err).__name__}: {err}"))


def _load(path: str) -> TriageModel:
    # Memory-mapped arrays: N processes share the model's weights through the page cache.
    model = load_model(path, mmap=True)
    model.predict(list(WARMUP_TEXTS))
    return model


def _sha(card: ModelCard) -> str:
    return card.artifact.sha256
