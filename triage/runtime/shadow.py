"""Shadow scoring: a candidate model answers a sample of live traffic off the request path.

The live model answers every call as usual; afterwards the request thread *offers* the decision
to a :class:`ShadowScorer`, which keeps a deterministic share of them on a bounded queue. A
feeder thread sends them in batches to ONE candidate process and hands the candidate's answers
(:class:`~triage.store.records.ShadowDecision`) to ``on_scored``, normally the decision record's
writer, which stores them beside the live decisions they shadow.

The bounded CPU share: the candidate runs in a single process, so it never uses more than one
core, and at a lower CPU priority (``os.nice``, +10 by default) than the live model processes.
Under contention the kernel's fair scheduler weighs a nice-10 process at about a tenth of a
nice-0 one, so the live processes always win the CPU; the shadow only gets what they leave. When
the candidate falls behind, its queue fills and further samples are dropped (and counted):
shadow answers are evidence for the next promotion, never something a caller waits for.
What stays in the serving process is small and grows with the share: a hash per offer (about a
microsecond), and on the feeder thread, sending the sampled texts and building their records.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from triage.core.artifacts import read_card
from triage.core.errors import ModelLoadError
from triage.core.model import Prediction
from triage.lifeline import Lifeline, die_with_parent
from triage.runtime.model_process import load_warm
from triage.runtime.pinned_directory import PinnedDirectory
from triage.runtime.supervision import Supervision, stop_child
from triage.store.records import ShadowDecision, utc_now

log = logging.getLogger(__name__)

# Why a sampled decision got no shadow answer (ShadowReadings.dropped).
QUEUE_FULL = "queue_full"  # the candidate was behind: the queue was full when it was offered
FAILED = "failed"  # its batch was lost: the candidate process died, hung or raised
CLOSED = "closed"  # still queued (or in flight) when the scorer was closed
DROP_REASONS = (QUEUE_FULL, FAILED, CLOSED)

DEFAULT_NICENESS = 10
# A process at nice +10 gets about a tenth of the CPU of a nice-0 one when both want it, so the
# candidate may take ten times as long as a live process before it counts as hung.
SLOWDOWN = 10
_HASH_SPACE = 1 << 64
# The result of one report, as the candidate process sends it back: label, confidence, the
# probabilities in the card's label order, needs_review, review reasons.
_Compact = tuple[str, float, tuple[float, ...], bool, tuple[str, ...]]


def share_threshold(share: float) -> int:
    """The hash value below which a decision id is in ``share`` (0..1) of all decisions."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the shadow share must be from 0 to 1, not {share!r}")
    return round(share * _HASH_SPACE)


def in_share(decision_id: str, threshold: int) -> bool:
    """Whether ``decision_id`` is sampled: the same answer for the same id in every process and
    run (an unkeyed BLAKE2b of the id, not Python's per-process ``hash``), so that replicas
    sampling the same share pick the same decisions."""
    digest = hashlib.blake2b(decision_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < threshold


@dataclass(frozen=True)
class ShadowReadings:
    """What a shadow scorer has done since it was made, for logs, metrics and tests.

    ``sampled`` decisions end up ``scored``, ``dropped`` (by reason) or still ``queued``."""

    version: str | None  # the candidate's model version; None before start()
    offered: int
    sampled: int
    scored: int
    dropped: Mapping[str, int]
    queued: int
    restarts: int  # candidate processes started again after one was lost
    running: bool  # a candidate process is up now


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (its type varies with the start method)
    conn: Connection
    version: str
    labels: tuple[str, ...]


class ShadowScorer:
    """Scores a deterministic ``share`` of offered decisions with the candidate at ``model_dir``,
    in one low-priority process, and hands the answers to ``on_scored`` (on its feeder thread).

    Nothing here can slow or fail a live call: :meth:`offer` never blocks and never raises for
    the shadow's own trouble; a candidate process that dies or hangs costs only the batch it
    held, and is restarted (immediately the first time, then after growing pauses while it keeps
    failing). Report texts stay in memory only: they are sent to the candidate process and
    never logged or kept.
    """

    def __init__(
        self,
        model_dir: Path,
        share: float,
        on_scored: Callable[[Sequence[ShadowDecision]], None],
        *,
        max_queue: int = 1000,
        batch_size: int = 64,
        niceness: int = DEFAULT_NICENESS,
        supervision: Supervision | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("a shadow scorer needs max_queue and batch_size of at least 1")
        if not 0 <= niceness <= 19:
            raise ValueError(f"niceness must be from 0 to 19, not {niceness}")
        self.model_dir = Path(model_dir)
        self.share = share
        self._threshold = share_threshold(share)
        self._on_scored = on_scored
        self._batch_size = batch_size
        self._niceness = niceness
        self._supervision = supervision or Supervision()
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue(max_queue)
        self._counts = threading.Lock()
        self._offered = self._sampled = self._scored = self._restarts = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._closing = threading.Event()
        self._context = multiprocessing.get_context("forkserver")
        # The fork server imports this module (and so scikit-learn) once, so that a candidate
        # process, a restart too, skips that import. It covers the live model processes' needs
        # as well, should this run first. (No effect if the fork server already runs.)
        self._context.set_forkserver_preload([__name__])
        self._lifeline: Lifeline | None = None
        self._pinned: PinnedDirectory | None = None
        self._worker: _Worker | None = None
        self._feeder: threading.Thread | None = None
        self.version: str | None = None

    # -- the request thread ---------------------------------------------------------------------

    def offer(self, decision_id: str, text: str) -> bool:
        """Offer a decision the live model has answered; True if it was queued for the candidate.

        Called on the request thread after the live answer, so it only hashes the id and puts
        the pair on a bounded queue without waiting (a few microseconds). A decision outside
        the share is not kept. When the queue is full the decision is dropped and counted
        (``queue_full``): shadow answers are best-effort evidence, not acknowledged data, and
        a candidate that cannot keep up must never hold up a live call.
        """
        if self._closing.is_set():
            return False
        if not in_share(decision_id, self._threshold):
            with self._counts:
                self._offered += 1
            return False
        try:
            self._queue.put_nowait((decision_id, text))
        except queue.Full:
            with self._counts:
                self._offered += 1
                self._sampled += 1
                self._dropped[QUEUE_FULL] += 1
            return False
        with self._counts:
            self._offered += 1
            self._sampled += 1
        return True

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> ShadowScorer:
        """Load the candidate in its process and start feeding it.

        The candidate is verified and loaded exactly as a live model is (its card, then the
        artifact's hash, then a load that runs no code); one that is refused raises
        :class:`ModelLoadError` here and nothing is left running.
        """
        if self._feeder is not None or self._closing.is_set():
            raise RuntimeError("a shadow scorer starts once")
        read_card(self.model_dir)  # refuses what is no model directory, in the loader's words
        # Restarts load the same directory, even if it is moved or replaced meanwhile.
        pinned = PinnedDirectory(self.model_dir)
        lifeline = Lifeline()  # the candidate process ends with this process, however it ends
        try:
            worker = self._start_process(pinned, lifeline)
        except BaseException:
            lifeline.close()
            pinned.close()
            raise
        self._pinned, self._lifeline, self._worker = pinned, lifeline, worker
        self.version = worker.version
        self._feeder = threading.Thread(target=self._feed, name="shadow-feeder", daemon=True)
        self._feeder.start()
        log.info(
            "shadow model %s scores %.1f%% of live decisions in process %d at nice +%d",
            worker.version,
            self.share * 100,
            worker.process.pid,
            self._niceness,
        )
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop feeding, stop the candidate process (and wait for it), drop what is queued."""
        self._closing.set()
        if self._feeder is not None:
            self._feeder.join(timeout)
        worker, self._worker = self._worker, None
        if worker is not None:  # the feeder stops it on its way out; this is the fallback
            stop_child(worker.process, worker.conn, kill=True)
        self._drop_queued()
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None
        if self._pinned is not None:
            self._pinned.close()
            self._pinned = None

    # -- readings -------------------------------------------------------------------------------

    def readings(self) -> ShadowReadings:
        worker = self._worker
        with self._counts:
            return ShadowReadings(
                version=self.version,
                offered=self._offered,
                sampled=self._sampled,
                scored=self._scored,
                dropped=dict(self._dropped),
                queued=self._queue.qsize(),
                restarts=self._restarts,
                running=worker is not None and worker.process.is_alive(),
            )

    # One reading each, for gauges read when scraped.
    @property
    def offered(self) -> int:
        return self._offered

    @property
    def sampled(self) -> int:
        return self._sampled

    @property
    def scored(self) -> int:
        return self._scored

    @property
    def dropped(self) -> Mapping[str, int]:
        with self._counts:
            return dict(self._dropped)

    @property
    def pid(self) -> int | None:
        """The candidate process's id; None while it is down."""
        worker = self._worker
        return worker.process.pid if worker is not None else None

    # -- the feeder thread ----------------------------------------------------------------------

    def _feed(self) -> None:
        failures = 0  # processes lost or not started, in a row: paces the restarts
        retry_at = 0.0
        while not self._closing.is_set():
            try:
                worker = self._worker
                if worker is None:
                    wait = retry_at - time.monotonic()
                    if wait > 0:
                        self._closing.wait(min(wait, self._supervision.check_seconds))
                    elif not self._restart():
                        failures += 1
                        retry_at = time.monotonic() + self._supervision.retry_delay(failures)
                    continue
                batch = self._next_batch()
                if not batch:
                    if not worker.process.is_alive():
                        self._lost(worker, "exited while idle")
                        failures += 1
                        retry_at = time.monotonic() + self._pause(failures)
                    continue
                if self._score(worker, batch):
                    failures = 0
                elif not self._closing.is_set():
                    failures += 1
                    retry_at = time.monotonic() + self._pause(failures)
            except Exception:  # the feeder must outlive any one failure
                log.exception("shadow scoring failed; still feeding")
                self._closing.wait(self._supervision.check_seconds)
        worker, self._worker = self._worker, None
        if worker is not None:
            stop_child(worker.process, worker.conn)

    def _pause(self, failures: int) -> float:
        """Seconds before restarting a candidate lost ``failures`` times in a row: none the
        first time, then growing, so that a candidate that keeps dying costs little CPU."""
        return 0.0 if failures <= 1 else self._supervision.retry_delay(failures - 1)

    def _next_batch(self) -> list[tuple[str, str]]:
        try:
            batch = [self._queue.get(timeout=self._supervision.check_seconds)]
        except queue.Empty:
            return []
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _score(self, worker: _Worker, batch: list[tuple[str, str]]) -> bool:
        """Score one batch on the candidate and hand its answers on; False if the process was
        lost doing it (the batch is dropped and counted either way)."""
        texts = [text for _, text in batch]
        bound = SLOWDOWN * (
            self._supervision.batch_seconds
            + sum(len(t) for t in texts) / self._supervision.chars_per_second
        )
        started = time.monotonic()
        reply: Any = None
        try:
            worker.conn.send(("score", texts))
            reply = self._reply(worker, started + bound)
        except (EOFError, OSError):
            reply = None
        if reply is None or reply[0] != "ok":
            closing = self._closing.is_set() and reply is None
            self._count_dropped(CLOSED if closing else FAILED, len(batch))
            if closing:
                return False
            if reply is None:
                hung = time.monotonic() >= started + bound
                what = f"did not answer in {bound:.0f} s" if hung else "died"
                self._lost(worker, f"{what}; its batch of {len(batch)} is dropped")
                return False
            log.error(  # the reply names the error's type only: its text could quote a report
                "shadow model %s failed a batch of %d (%s); it is dropped",
                worker.version,
                len(batch),
                reply[1],
            )
            return True
        latency_ms = (time.monotonic() - started) * 1000
        scored_at = utc_now()
        answers = [
            ShadowDecision(
                decision_id=decision_id,
                model_version=worker.version,
                scored_at=scored_at,
                label=label,
                confidence=confidence,
                scores=dict(zip(worker.labels, probabilities, strict=True)),
                needs_review=needs_review,
                reasons=reasons,
                latency_ms=latency_ms,
            )
            for (decision_id, _), (label, confidence, probabilities, needs_review, reasons) in zip(
                batch, reply[1], strict=True
            )
        ]
        with self._counts:
            self._scored += len(answers)
        try:
            self._on_scored(answers)
        except Exception:  # the records hold no text, so the traceback cannot show one
            log.exception("the shadow answers of a batch of %d could not be handed on", len(batch))
        return True

    def _reply(self, worker: _Worker, deadline: float) -> Any:
        """The candidate's reply, or None if it died, passed ``deadline`` or we are closing."""
        while not worker.conn.poll(self._supervision.check_seconds):
            if self._closing.is_set() or time.monotonic() >= deadline:
                return None
            if not worker.process.is_alive():
                return None
        return worker.conn.recv()

    def _restart(self) -> bool:
        pinned, lifeline = self._pinned, self._lifeline
        if pinned is None or lifeline is None:
            return False
        try:
            worker = self._start_process(pinned, lifeline)
        except Exception as err:
            log.error("the shadow model could not be restarted from %s: %s", pinned.real, err)
            return False
        self._worker = worker
        with self._counts:
            self._restarts += 1
        log.warning("shadow model %s restarted (pid %s)", worker.version, worker.process.pid)
        return True

    def _lost(self, worker: _Worker, what: str) -> None:
        self._worker = None
        stop_child(worker.process, worker.conn, kill=True)
        log.error(
            "shadow model process %s %s (exit code %s); restarting it",
            worker.process.pid,
            what,
            worker.process.exitcode,
        )

    def _start_process(self, pinned: PinnedDirectory, lifeline: Lifeline) -> _Worker:
        """A candidate process, ready on the model in ``pinned``."""
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=run_shadow_process,
            args=(child, str(pinned.path), lifeline.end, self._niceness),
            name="triage-shadow",
            daemon=True,
        )
        process.start()
        child.close()
        deadline = time.monotonic() + self._supervision.start_seconds
        while not parent.poll(self._supervision.check_seconds):
            if time.monotonic() >= deadline or self._closing.is_set() or not process.is_alive():
                if parent.poll(0):  # it answered as it exited
                    break
                stop_child(process, parent, kill=True)
                raise ModelLoadError(
                    f"the shadow model {pinned.real.name!r} did not load "
                    + ("(it exited)" if process.exitcode is not None else "in time")
                )
        try:
            reply = parent.recv()
        except EOFError:
            reply = ("error", "its process exited while loading")
        if reply[0] != "ready":
            stop_child(process, parent, kill=True)
            raise ModelLoadError(f"the shadow model was refused: {reply[1]}")
        return _Worker(process, parent, reply[1], tuple(reply[2]))

    def _count_dropped(self, reason: str, n: int) -> None:
        with self._counts:
            self._dropped[reason] += n

    def _drop_queued(self) -> None:
        left = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            left += 1
        if left:
            self._count_dropped(CLOSED, left)


# -- the candidate process ------------------------------------------------------------------------


def run_shadow_process(conn: Connection, path: str, lifeline: Connection, niceness: int) -> None:
    """Lower this process's priority, load the candidate at ``path``, report ready, then score
    the texts ``conn`` brings until told to stop (or the scorer's end of the pipe closes)."""
    die_with_parent(lifeline)  # a front process killed outright takes its candidate with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scorer decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(niceness)  # first: loading is CPU work the live processes come before too
    try:
        model = load_warm(path)
    except Exception as err:  # a ModelLoadError names the version and the check, no report
        conn.send(("error", str(err)))
        return
    conn.send(("ready", model.version, model.labels, os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] != "score":
            return  # "stop"
        try:
            predictions = model.predict(message[1], top_k=0)  # no explanation: not recorded
            conn.send(("ok", [_compact(p, model.labels) for p in predictions]))
        except Exception as err:
            conn.send(("error", type(err).__name__))  # its text could quote a report


def _compact(prediction: Prediction, labels: Sequence[str]) -> _Compact:
    probabilities = dict(prediction.scores)
    return (
        prediction.label,
        prediction.confidence,
        tuple(probabilities[label] for label in labels),
        prediction.needs_review,
        prediction.review_reasons,
    )
