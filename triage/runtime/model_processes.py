"""Model worker processes behind one front process: one supervised lane (a lock and a pipe) each."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from triage.core.artifacts import ModelCard, read_card
from triage.core.errors import ModelLoadError, ModelUnavailable
from triage.core.model import TriageModel
from triage.core.scoring import Outcome, Report, accept_all, score_reports
from triage.lifeline import Lifeline
from triage.runtime.live import ReloadResult
from triage.runtime.model_process import load_warm, run_model_process
from triage.runtime.model_watch import ModelWatch
from triage.runtime.pinned_directory import PinnedDirectory
from triage.runtime.supervision import Supervision, stop_child

log = logging.getLogger(__name__)

# What callers are told (UNAVAILABLE: retry). No path, pid or model detail: they may be remote.
DIED = "the model process scoring this report stopped; it is being restarted, retry"
HUNG = "the model process scoring this report did not answer in time; it is being restarted, retry"
NO_LANE = "no model process can score right now; retry later"
NOT_LOADED = "no model is loaded yet; retry shortly"


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (its type varies with the start method)
    conn: Connection


@dataclass
class _Batch:
    """A batch a lane's process is scoring, for the supervisor's watchdog."""

    worker: _Worker
    reports: int
    bound: float  # seconds it may take
    deadline: float  # time.monotonic() by which it must be back
    killed: bool = False  # by the watchdog


@dataclass
class _Lane:
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while the pipe is used
    worker: _Worker | None = None  # None: down (lost, or never started)
    batch: _Batch | None = None
    failed_starts: int = 0  # in a row; above 0 the lane cannot serve until a start succeeds
    retry_at: float = 0.0  # time.monotonic() of the next start attempt
    starting: bool = False  # a restart thread owns the next start


class ModelWorkerPool:
    """N model processes behind one front process, one lane (a lock and a pipe) per process.

    - ``score(lane, reports)`` runs one batch on that lane's process; if the lane is down it
      runs on another lane that is up, and only if none is (and none is about to be) does it
      fail at once with :class:`ModelUnavailable` (UNAVAILABLE).
    - A supervisor thread holds every batch to a deadline (:class:`Supervision`): a process
      that does not answer in time is taken as hung and killed. A process that dies or is
      killed fails only the batch it held (UNAVAILABLE to those callers, never retried
      elsewhere: the batch may be what killed it); the supervisor logs it, and starts a fresh
      process on the serving model in the background (counted in :attr:`restarts`), retrying
      with growing pauses if that fails. :attr:`serving` is False once no lane can serve.
    - Every process loads the serving model through its :class:`PinnedDirectory`, so a
      restart still finds it after its directory was moved.
    - ``reload()`` is two-phase: every process loads and verifies the new model beside the old
      one (lane by lane, so the other lanes keep scoring; a lane that is down gets a fresh
      process on the new model), and only when all have it do they all switch at once; if any
      refuses it, all drop it and the old model keeps serving.
    - With ``quiet_lane``, this process keeps a copy of the model too, as one extra lane
      (:attr:`quiet_lane`) for a call that arrives when nothing else is in flight: it is scored
      on the caller's own thread, without the round trip to a model process that has gone idle
      (~0.3 ms to wake it on this kind of machine, plus its cold caches). It costs one more copy
      of the model's private memory; under load the batcher never uses it.
    """

    def __init__(
        self,
        path: Path,
        size: int,
        quiet_lane: bool = False,
        supervision: Supervision | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one process")
        self.path = Path(path)
        self.lanes = size
        self.quiet_lane: int | None = size if quiet_lane else None
        self.supervision = supervision or Supervision()
        self._local: TriageModel | None = None  # the quiet lane's model
        self._quiet_lock = threading.Lock()
        self._context = multiprocessing.get_context("forkserver")
        # Imported once in the fork server, so a model process (a restart too) skips the ~2 s
        # import of scikit-learn. (No effect if the fork server already runs.)
        self._context.set_forkserver_preload(["triage.runtime.model_process"])
        self._lanes = [_Lane() for _ in range(size)]
        self._changed = threading.Condition()  # notified when a lane comes up or goes down
        self._wake = threading.Event()  # the supervisor looks again at once
        self._closing = threading.Event()
        self._reload_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._watch = ModelWatch(self.path)
        self._pinned: PinnedDirectory | None = None  # the serving model's directory
        self._card: ModelCard | None = None
        self._lifeline = Lifeline()  # model processes end with this process, however it ends
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    # -- the engine interface shared with LiveModel -------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._card is not None

    @property
    def serving(self) -> bool:
        """Whether some lane can score: its process is up, or being restarted for the first
        time since it was lost (a lane whose restart failed cannot, until one succeeds)."""
        if self._card is None or self._closing.is_set():
            return False
        return any(lane.worker is not None or lane.failed_starts == 0 for lane in self._lanes)

    @property
    def refusing(self) -> bool:
        """Whether the model path leads to a model that was refused (the old one serves)."""
        return self._watch.refusing

    @property
    def card(self) -> ModelCard:
        if self._card is None:
            raise ModelUnavailable(NOT_LOADED)
        return self._card

    def score(self, lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]:
        if lane == self.quiet_lane:
            with self._quiet_lock:
                local = self._local
                if local is None:
                    raise ModelUnavailable(NOT_LOADED)
                return local.version, score_reports(local, reports, accept_all)
        waiting_until: float | None = None
        while True:
            target = self._pick(lane)
            if target is not None:
                state = self._lanes[target]
                with state.lock:
                    worker = state.worker
                    if worker is not None:
                        if worker.process.is_alive():
                            return self._run(target, state, worker, reports)
                        self._lost(target, state, "exited while idle")
                continue
            # No lane is up. Wait a little for one being restarted; fail at once otherwise.
            now = time.monotonic()
            if waiting_until is None:
                waiting_until = now + self.supervision.batch_seconds
            with self._changed:
                if now >= waiting_until or not self._recovering():
                    raise ModelUnavailable(NO_LANE if self._card is not None else NOT_LOADED)
                self._changed.wait(waiting_until - now)

    def reload(self) -> ReloadResult:
        with self._reload_lock:
            try:
                return self._reload()
            except ModelLoadError:
                self._watch.refused()
                raise

    def changed_on_disk(self) -> bool:
        pinned = self._pinned
        return self._watch.changed(pinned.real if pinned is not None else None)

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.join(10)
        for state in self._lanes:
            with state.lock:
                worker, state.worker = state.worker, None
                if worker is not None:
                    stop_child(worker.process, worker.conn)
        self._local = None
        if self._pinned is not None:
            self._pinned.close()
        self._lifeline.close()
        with self._changed:
            self._changed.notify_all()

    # -- for operators and tests ----------------------------------------------------------------
    def pids(self) -> list[int | None]:
        """Each lane's process id; None while the lane is down."""
        workers = [lane.worker for lane in self._lanes]
        return [w.process.pid if w is not None else None for w in workers]

    def busy(self) -> list[bool]:
        """Whether each lane's process holds a batch now."""
        return [lane.batch is not None for lane in self._lanes]

    # -- scoring ----------------------------------------------------------------------------------
    def _pick(self, lane: int) -> int | None:
        """``lane`` if its process is up, else an idle lane that is up, else any that is."""
        if self._lanes[lane].worker is not None:
            return lane
        up = [n for n, state in enumerate(self._lanes) if state.worker is not None]
        idle = [n for n in up if not self._lanes[n].lock.locked()]
        choices = idle or up
        return choices[0] if choices else None

    def _recovering(self) -> bool:
        """Whether a lane that is down is about to come back (called with ``_changed`` held)."""
        if self._closing.is_set() or self._pinned is None:
            return False
        return any(s.worker is None and s.failed_starts == 0 for s in self._lanes)

    def _run(
        self, lane: int, state: _Lane, worker: _Worker, reports: Sequence[Report]
    ) -> tuple[str, list[Outcome]]:
        """One batch on the lane's process, under the watchdog (lane lock held)."""
        bound = self.supervision.batch_bound(reports)
        batch = _Batch(worker, len(reports), bound, time.monotonic() + bound)
        state.batch = batch
        try:
            worker.conn.send(("score", list(reports)))
            reply = worker.conn.recv()
        except (EOFError, OSError):  # it died, or the watchdog killed it
            reply = None
        finally:
            state.batch = None
        if reply is None:
            if batch.killed:
                self._lost(
                    lane, state, f"did not answer a batch of {batch.reports} in {bound:.1f}s"
                )
                raise ModelUnavailable(HUNG)
            self._lost(lane, state, f"died while scoring a batch of {batch.reports}")
            raise ModelUnavailable(DIED)
        if reply[0] != "ok":
            raise RuntimeError(f"model process failed: {reply[1]}")
        return reply[1], reply[2]

    def _lost(self, lane: int, state: _Lane, what: str) -> None:
        """Take a lane's process out of service, and have it restarted (lane lock held)."""
        worker, state.worker = state.worker, None
        if worker is None:
            return
        stop_child(worker.process, worker.conn, kill=True)
        state.retry_at = time.monotonic()
        log.error(
            "model process %d (pid %s) %s (exit code %s); restarting it",
            lane,
            worker.process.pid,
            what,
            worker.process.exitcode,
        )
        self._wake.set()
        with self._changed:
            self._changed.notify_all()

    # -- supervision ------------------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._closing.is_set():
            try:
                self._look_at_lanes()
            except Exception:  # the watchdog must outlive any one failure
                log.exception("model process supervision failed; still supervising")
            self._wake.wait(self.supervision.check_seconds)
            self._wake.clear()

    def _look_at_lanes(self) -> None:
        now = time.monotonic()
        for n, state in enumerate(self._lanes):
            batch = state.batch
            if batch is not None and not batch.killed and now >= batch.deadline:
                batch.killed = True  # the lane's own thread logs it and fails the batch
                batch.worker.process.kill()
            elif state.worker is None:
                if not state.starting and now >= state.retry_at:
                    state.starting = True
                    threading.Thread(
                        target=self._restart, args=(n,), name=f"model-restart-{n}", daemon=True
                    ).start()
            elif batch is None and state.lock.acquire(blocking=False):
                try:  # idle: is its process still there?
                    worker = state.worker
                    if worker is not None and not worker.process.is_alive():
                        self._lost(n, state, "exited while idle")
                finally:
                    state.lock.release()

    def _restart(self, lane: int) -> None:
        state = self._lanes[lane]
        try:
            with state.lock:
                pinned = self._pinned
                if state.worker is not None or self._closing.is_set() or pinned is None:
                    return
                try:
                    worker = self._start(lane, pinned)
                except Exception as err:  # whatever it was, the lane stays down for a while
                    state.failed_starts += 1
                    delay = self.supervision.retry_delay(state.failed_starts)
                    state.retry_at = time.monotonic() + delay
                    log.error(
                        "model process %d could not be restarted from %s (%s); the lane is down, "
                        "next attempt in %.0f s",
                        lane,
                        pinned.real,
                        err,
                        delay,
                    )
                    return
                self._installed(lane, state, worker)
        finally:
            state.starting = False
            with self._changed:
                self._changed.notify_all()

    def _installed(self, lane: int, state: _Lane, worker: _Worker) -> None:
        """Put a fresh process in a lane that had lost its own (lane lock held)."""
        state.worker, state.failed_starts = worker, 0
        with self._count_lock:
            self.restarts += 1
        log.warning("model process %d restarted (pid %s)", lane, worker.process.pid)

    def _start(self, lane: int, pinned: PinnedDirectory) -> _Worker:
        """A new process for ``lane``, ready on the model in ``pinned``."""
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=run_model_process,
            args=(child, str(pinned.path), self._lifeline.end),
            name=f"triage-model-{lane}",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        if not parent.poll(self.supervision.start_seconds):
            stop_child(worker.process, worker.conn, kill=True)
            raise ModelUnavailable("a model process did not start in time")
        try:
            reply = parent.recv()
        except EOFError:
            reply = ("error", "model process exited while loading")
        if reply[0] != "ready":
            stop_child(worker.process, worker.conn, kill=True)
            # The reply names the version, not the path: this error can reach a remote caller.
            raise ModelLoadError(f"a model process could not load the model: {reply[1]}")
        return worker

    # -- reloading --------------------------------------------------------------------------------
    def _reload(self) -> ReloadResult:
        resolved = self._watch.locate()
        previous, serving = self._card, self._pinned
        # The same directory: a cheap look at the card tells whether its model changed.
        if (
            previous is not None
            and serving is not None
            and serving.real == resolved
            and _sha(read_card(serving.path)) == _sha(previous)
        ):
            self._watch.accepted()
            return ReloadResult(previous.version, previous.version, changed=False)
        read_card(resolved)  # refuses what is no model directory, in the loader's own words
        pinned = PinnedDirectory(resolved)
        try:
            card = read_card(pinned.path)  # cheap; the processes verify the artifact themselves
            if previous is None:
                self._first_load(pinned)
            else:
                self._two_phase_switch(pinned)
        except BaseException:
            pinned.close()
            raise
        self._card = card
        self._watch.accepted()
        if serving is not None:
            serving.close()
        if previous is None:
            return ReloadResult(None, card.version, changed=True)
        log.info(
            "model %s now serving in %d processes (was %s)",
            card.version,
            self.lanes,
            previous.version,
        )
        return ReloadResult(previous.version, card.version, changed=True)

    def _first_load(self, pinned: PinnedDirectory) -> None:
        for lane, state in enumerate(self._lanes):
            with state.lock:
                state.worker = self._start(lane, pinned)
        if self.quiet_lane is not None:
            self._local = load_warm(str(pinned.path))
        self._pinned = pinned
        self._supervisor = threading.Thread(
            target=self._supervise, name="model-supervisor", daemon=True
        )
        self._supervisor.start()

    def _two_phase_switch(self, pinned: PinnedDirectory) -> None:
        prepared: list[int] = []
        fresh: dict[int, _Worker] = {}  # for lanes that were down: processes on the new model
        failure: str | None = None
        for lane, state in enumerate(self._lanes):
            with state.lock:
                if state.worker is None:
                    try:
                        fresh[lane] = self._start(lane, pinned)
                    except (ModelLoadError, ModelUnavailable) as err:
                        failure = str(err)
                        break
                    except Exception as err:  # its text may name paths: the caller may be remote
                        log.exception("cannot start a model process on %s", pinned.real)
                        failure = f"a model process could not be started ({type(err).__name__})"
                        break
                    continue
                reply = self._ask(lane, state, ("prepare", str(pinned.path)))
            if reply[0] != "prepared":
                failure = str(reply[1])
                break
            prepared.append(lane)
        local: TriageModel | None = None
        if failure is None and self.quiet_lane is not None:
            try:
                local = load_warm(str(pinned.path))
            except Exception as err:  # refused here: refused everywhere
                failure = str(err)
        if failure is not None:
            for lane in prepared:
                state = self._lanes[lane]
                with state.lock:
                    if state.worker is not None:
                        self._ask(lane, state, ("abort",))
            for worker in fresh.values():
                stop_child(worker.process, worker.conn)
            raise ModelLoadError(failure)
        # Every lane at once: no batch runs during the switch, so no caller can see the new
        # model from one lane and then the old one from another.
        with contextlib.ExitStack() as held:
            for state in self._lanes:
                held.enter_context(state.lock)
            held.enter_context(self._quiet_lock)
            self._pinned = pinned  # a process restarted from here on loads the new model
            for lane in prepared:
                state = self._lanes[lane]
                if state.worker is not None:  # lost since it prepared: restarts on the new one
                    self._ask(lane, state, ("commit",))
            for lane, worker in fresh.items():
                state = self._lanes[lane]
                if state.worker is not None:  # restarted meanwhile, on the old model
                    stop_child(state.worker.process, state.worker.conn)
                self._installed(lane, state, worker)
            if local is not None:
                self._local = local
        with self._changed:
            self._changed.notify_all()

    def _ask(self, lane: int, state: _Lane, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """Send a reload message to a lane's process and wait for its answer (lane lock held)."""
        worker = state.worker
        if worker is None:
            return ("error", "a model process stopped during the reload")
        try:
            worker.conn.send(message)
            if worker.conn.poll(self.supervision.start_seconds):
                reply: tuple[Any, ...] = worker.conn.recv()
                return reply
            self._lost(lane, state, f"did not answer {message[0]!r} in time")
            return ("error", "a model process did not answer during the reload")
        except (EOFError, OSError):
            self._lost(lane, state, f"died while answering {message[0]!r}")
            return ("error", "a model process stopped during the reload")


def _sha(card: ModelCard) -> str:
    return card.artifact.sha256
