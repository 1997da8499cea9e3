"""Assemble and run the gRPC server: engine, batching, security, health, metrics, shutdown."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from triage.core.errors import ModelLoadError, TriageError
from triage.rpc.access_log import AccessLogInterceptor
from triage.rpc.admission import CallSlots, RefusalNotice, RequestBudget
from triage.rpc.call_record import CallRecordInterceptor
from triage.rpc.intake import IntakeInterceptor
from triage.rpc.metrics import MetricsInterceptor, ServerMetrics
from triage.rpc.quality_metrics import QualityGauges
from triage.rpc.security import TlsConfig, TokenAuthInterceptor, is_loopback
from triage.rpc.servicer import ANSWERS_PER_MESSAGE, SERVICE_NAME, TriageServicer, add_to_server
from triage.rpc.status import StatusInterceptor
from triage.runtime.live import LiveModel, ReloadResult
from triage.runtime.microbatch import BatchingConfig, MicroBatcher
from triage.runtime.model_processes import ModelWorkerPool
from triage.runtime.recording import DecisionRecorder, RecordConfig
from triage.runtime.service import ClassificationService, Engine, Limits
from triage.runtime.supervision import Supervision
from triage.store.database import describe

log = logging.getLogger(__name__)

HEALTH_SERVICES = ("", SERVICE_NAME)
HEALTH_SECONDS = 0.2  # how often health is brought in line with what the engine can do
# Threads beyond the unary and stream slots: for health checks, which no limit refuses, and for
# the calls refused at a limit (each holds a thread for the microseconds its refusal takes).
SPARE_THREADS = 32


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs, built once by the CLI from flags and environment."""

    model_path: Path = Path("models/current")
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 0  # model processes; 0: score in this process
    quiet_lane: bool = True  # with workers: a copy of the model here for calls arriving alone
    supervision: Supervision = field(default_factory=Supervision)  # model process watchdog
    batching: BatchingConfig | None = field(default_factory=BatchingConfig)  # None: off
    max_in_flight: int = 256  # unary calls at once; beyond it RESOURCE_EXHAUSTED at once
    max_streams: int = 64  # long-lived streams open (ClassifyStream, Health/Watch, reflection)
    max_streams_per_connection: int = 16
    max_request_bytes: int = 64 * 1024 * 1024  # request bytes being handled at once
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 10.0
    drain_seconds: float = 0.0  # NOT_SERVING this long before refusing calls, for probes to see
    watch_seconds: float = 2.0  # how often to look for a switched models/current; 0: never
    tls: TlsConfig | None = None
    insecure: bool = False  # allow plaintext on a non-loopback address
    tokens: tuple[str, ...] = ()  # client bearer tokens; with no admin token either: no auth
    admin_tokens: tuple[str, ...] = ()  # bearer tokens that may also call ReloadModel
    reviewer_tokens: tuple[str, ...] = ()  # may also call SubmitFeedback and GetDecision
    record: RecordConfig | None = None  # the decision record; None: decisions are not recorded
    metrics_port: int | None = None  # Prometheus /metrics; None: off
    metrics_host: str = "127.0.0.1"


class TriageServer:
    """A started server on a bound port, with its live model and health states."""

    def __init__(self, config: ServeConfig) -> None:
        _refuse_unprotected_plaintext(config)
        _refuse_unusable_limits(config)
        self.config = config
        self.metrics = ServerMetrics()
        self.recorder = _recorder(config, self.metrics)
        self.quality = _quality_gauges(config, self.recorder, self.metrics)
        try:
            self.engine, self.batcher = _engine_and_batcher(config, self.metrics)
        except BaseException:
            if self.recorder is not None:
                self.recorder.close()
            raise
        self.service = ClassificationService(
            self.engine, config.limits, self.batcher, reload=self.reload, recorder=self.recorder
        )
        self.health = health.HealthServicer()
        self._report_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.slots, self.budget = _capacity(config, self.metrics)
        self.server = _grpc_server(config, self.metrics, self.slots, self.budget)
        _add_services(self.server, TriageServicer(self.service), self.health)
        self.port = _bind(self.server, config)
        self.metrics_port: int | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._serving: bool | None = None  # as last reported to the health service
        self._watch_trouble = ""  # the watcher's last failure, logged once until it changes

    def start(self) -> TriageServer:
        """Listen, then load and warm the model; health turns SERVING only after that."""
        self.listen()
        return self.activate()

    def listen(self) -> TriageServer:
        """Accept calls (health NOT_SERVING; Classify UNAVAILABLE until :meth:`activate`)."""
        self.server.start()
        return self

    def activate(self) -> TriageServer:
        """Load, verify and warm the model, then report SERVING and watch for switches."""
        try:
            self.reload()
            if self.config.metrics_port is not None:
                self.metrics_port = self.metrics.serve(
                    self.config.metrics_port, self.config.metrics_host
                )
                log.info(
                    "metrics on http://%s:%d/metrics", self.config.metrics_host, self.metrics_port
                )
        except BaseException:
            self.server.stop(0)  # nothing to serve: refuse, and release the port
            self._close_backends()
            raise
        self._follow_engine()  # SERVING: the model is loaded and warmed
        if self.quality is not None:
            self.quality.start()
        threading.Thread(target=self._keep_health, name="health", daemon=True).start()
        log.info(
            "serving model %s on %s:%d (%s, batching %s)",
            self.engine.card.version,
            self.config.host,
            self.port,
            f"{self.config.workers} model processes" if self.config.workers else "in-process",
            "on" if self.batcher else "off",
        )
        if self.config.watch_seconds > 0:
            self._watcher = threading.Thread(target=self._watch, name="model-watch", daemon=True)
            self._watcher.start()
        return self

    def reload_in_background(self) -> None:
        """Reload without blocking the caller (used by SIGHUP); failures are logged."""
        threading.Thread(target=self._reload_logged, name="model-reload", daemon=True).start()

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let calls in flight finish within the grace period, then stop."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        if self.config.drain_seconds > 0:
            time.sleep(self.config.drain_seconds)
        grace = self.config.grace_seconds if grace is None else grace
        log.info("shutting down: finishing calls in flight (grace %.1f s)", grace)
        self.server.stop(grace).wait()
        self._close_backends()
        log.info("stopped")

    def reload(self) -> ReloadResult:
        """Load, verify, warm and swap in what the model path holds now (every process)."""
        try:
            result = self.engine.reload()
        except Exception:
            self.metrics.reloads.labels("failure").inc()
            raise
        if result.changed:
            self.metrics.reloads.labels("success").inc()
            card = self.engine.card
            self.metrics.model.info(
                {
                    "version": card.version,
                    "created": card.created,
                    "candidate": card.training.candidate,
                }
            )
        return result

    def _report_health(self, status: int) -> None:
        for name in HEALTH_SERVICES:
            self.health.set(name, status)

    def _close_backends(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.engine.close()
        if self.quality is not None:
            self.quality.stop()
        if self.recorder is not None:
            self.recorder.close()  # after the last call: every answer is on record or spooled
        self.metrics.close()

    def _follow_engine(self) -> None:
        """Report SERVING exactly while the engine can score: NOT_SERVING while no model
        process can (all lost and none restartable), so that probes take the replica out."""
        serving = self.engine.serving
        if serving != self._serving:
            if self._serving is not None:
                log.log(
                    logging.INFO if serving else logging.ERROR,
                    "health: %s",
                    "SERVING again" if serving else "NOT_SERVING: no model process can score",
                )
            self._serving = serving
            self._report_health(
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )

    def _keep_health(self) -> None:
        while not self._stopping.wait(HEALTH_SECONDS):
            try:
                self._follow_engine()
            except Exception:  # this thread must outlive any one failure
                log.exception("cannot update health")

    def _watch(self) -> None:
        # Whatever goes wrong in one look (a link being replaced, a `current` that points to
        # itself), the watcher keeps watching: a later promotion must still be picked up.
        while not self._stopping.wait(self.config.watch_seconds):
            try:
                if self.engine.changed_on_disk():
                    self._reload_logged()
                self._watch_trouble = ""
            except Exception as err:
                trouble = f"{type(err).__name__}: {err}"
                if trouble != self._watch_trouble:  # once, not on every look
                    log.warning("cannot check %s: %s", self.config.model_path, trouble)
                self._watch_trouble = trouble

    def _reload_logged(self) -> None:
        try:
            result = self.reload()
        except ModelLoadError as err:
            log.error("reload refused, still serving %s: %s", self.engine.card.version, err)
        except Exception:
            log.exception("reload failed, still serving %s", self.engine.card.version)
        else:
            if result.changed:
                log.info("reloaded: %s -> %s", result.previous_version, result.model_version)


def _refuse_unprotected_plaintext(config: ServeConfig) -> None:
    if config.tls is None and not config.insecure and not is_loopback(config.host):
        raise TriageError(
            f"refusing plaintext on {config.host}: reports are sensitive. Give --tls-cert and "
            "--tls-key, bind a loopback address, or pass --insecure to accept the risk"
        )
    public_metrics = config.metrics_port is not None and not is_loopback(config.metrics_host)
    if public_metrics and not config.insecure:
        raise TriageError(
            f"refusing metrics on {config.metrics_host}: /metrics is plain HTTP without "
            "authentication (model version, labels, traffic). Bind --metrics-host to a loopback "
            "address, or pass --insecure to accept the risk"
        )
    if public_metrics:
        log.warning(
            "PLAINTEXT metrics on %s, without authentication (--insecure)", config.metrics_host
        )


def _refuse_unusable_limits(config: ServeConfig) -> None:
    if config.max_request_bytes < config.limits.max_message_bytes:
        raise TriageError(
            f"the request budget ({config.max_request_bytes // (1024 * 1024)} MiB) is smaller "
            f"than the message size limit ({config.limits.max_message_bytes // (1024 * 1024)} "
            "MiB): a request of the largest accepted size could never be handled"
        )


def _capacity(config: ServeConfig, metrics: ServerMetrics) -> tuple[CallSlots, RequestBudget]:
    """The call slots and the request byte budget, counted and exported as metrics."""
    notice = RefusalNotice(lambda limit: metrics.refusals.labels(limit).inc())
    slots = CallSlots(
        config.max_in_flight, config.max_streams, config.max_streams_per_connection, notice
    )
    budget = RequestBudget(config.max_request_bytes, notice)
    metrics.calls_in_flight.labels("unary").set_function(lambda: slots.unary)
    metrics.calls_in_flight.labels("stream").set_function(lambda: slots.streams)
    metrics.request_bytes_in_flight.set_function(lambda: budget.in_use)
    return slots, budget


def _recorder(config: ServeConfig, metrics: ServerMetrics) -> DecisionRecorder | None:
    """The decision record, its readings exported as metrics; None when not recording."""
    if config.record is None:
        return None
    recorder = DecisionRecorder.open(config.record)
    journal = recorder.journal
    metrics.record_pending.set_function(lambda: journal.pending)
    metrics.record_spool_bytes.set_function(lambda: journal.spool_bytes)
    metrics.record_store_up.set_function(lambda: float(journal.store_up))
    metrics.record_written.set_function(lambda: journal.written)
    metrics.record_write_failures.set_function(lambda: journal.write_failures)
    shadow = recorder.shadow
    if shadow is not None:
        readings: dict[str, Callable[[], float]] = {
            "offered": lambda: shadow.offered,
            "sampled": lambda: shadow.sampled,
            "scored": lambda: shadow.scored,
            "dropped_queue_full": lambda: shadow.dropped.get("queue_full", 0),
            "dropped_failed": lambda: shadow.dropped.get("failed", 0),
        }
        for outcome, read in readings.items():
            metrics.shadow.labels(outcome).set_function(read)
    log.info(
        "recording decisions in %s (spool %s; report texts %s)",
        describe(config.record.store_url),
        config.record.spool_dir,
        "kept for review, encrypted" if config.record.review_queue else "never kept",
    )
    return recorder


def _quality_gauges(
    config: ServeConfig, recorder: DecisionRecorder | None, metrics: ServerMetrics
) -> QualityGauges | None:
    """Live accuracy, review rate and drift per model version, from the record, as gauges
    (computed in the background, never when scraped)."""
    if recorder is None or config.record is None or config.record.quality_seconds <= 0:
        return None
    return QualityGauges(
        recorder.store,
        config.model_path.parent,  # models/current or models/VERSION: the models folder
        metrics.registry,
        refresh_seconds=config.record.quality_seconds,
    )


def _engine_and_batcher(
    config: ServeConfig, metrics: ServerMetrics
) -> tuple[Engine, MicroBatcher | None]:
    """Where models run (model processes, or this one), and the micro-batcher in front."""
    engine: Engine = (
        ModelWorkerPool(config.model_path, config.workers, config.quiet_lane, config.supervision)
        if config.workers > 0
        else LiveModel(config.model_path)
    )
    metrics.worker_restarts.set_function(lambda: engine.restarts)
    metrics.model_refused.set_function(lambda: float(engine.refusing))
    if config.batching is None:
        return engine, None
    batcher = MicroBatcher(
        engine.score,
        engine.lanes,
        config.batching,
        on_batch=metrics.batch_size.observe,
        quiet_lane=engine.quiet_lane,
    )
    metrics.queue_depth.set_function(lambda: batcher.queue_depth)
    return engine, batcher


def _grpc_server(
    config: ServeConfig, metrics: ServerMetrics, slots: CallSlots, budget: RequestBudget
) -> grpc.Server:
    size = config.limits.max_message_bytes
    # A thread per call in flight (batched calls wait in theirs for their result; a stream
    # holds one for its life): enough for every unary and every stream slot at once, and spare
    # ones, so that neither kind can take the threads the other, or a health check, needs.
    # Threads start only when needed. No gRPC-wide call limit: it would refuse health checks
    # with everything else; the intake's slots refuse instead, by kind.
    threads = config.max_in_flight + config.max_streams + SPARE_THREADS
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
        interceptors=_interceptors(config, metrics, slots, budget),
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail loudly
        ],
    )


def _interceptors(
    config: ServeConfig, metrics: ServerMetrics, slots: CallSlots, budget: RequestBudget
) -> list[grpc.ServerInterceptor]:
    """Outermost first: each call's record, the reports that read it (so refused calls are
    logged and counted too), token checks, the mapping of errors to status codes, and the
    intake (capacity slots and request bytes: after the token check, so a call without a valid
    token holds no slot and its request is never even read)."""
    open_admin = is_loopback(config.host)  # no tokens at all: ReloadModel only on loopback
    needs_auth = config.tokens or config.admin_tokens or config.reviewer_tokens or not open_admin
    auth = (
        [
            TokenAuthInterceptor(
                config.tokens, config.admin_tokens, open_admin, config.reviewer_tokens
            )
        ]
        if needs_auth
        else []
    )
    return [
        CallRecordInterceptor(),
        AccessLogInterceptor(),
        MetricsInterceptor(metrics),
        *auth,
        StatusInterceptor(),
        IntakeInterceptor(slots, budget, ANSWERS_PER_MESSAGE),
    ]


def _add_services(
    server: grpc.Server, servicer: TriageServicer, health_servicer: health.HealthServicer
) -> None:
    add_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )


def _bind(server: grpc.Server, config: ServeConfig) -> int:
    """Listen on the configured address (TLS if configured); returns the bound port."""
    address = f"{config.host}:{config.port}"
    try:
        port: int = (
            server.add_secure_port(address, config.tls.credentials())
            if config.tls is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError:
        port = 0
    if port == 0:
        raise TriageError(f"cannot listen on {config.host}:{config.port}: in use or not local")
    if config.tls is None and not is_loopback(config.host):
        log.warning(
            "PLAINTEXT on %s: report texts cross the network unencrypted (--insecure)", address
        )
    return port


def serve(config: ServeConfig) -> int:
    """Run until SIGTERM or SIGINT, reloading on SIGHUP; return the process exit code.

    The handlers are installed before the model loads: a signal's default action would end the
    process (a SIGHUP sent while it loads would kill it with code 129). A SIGHUP during the
    load reloads once serving; a SIGTERM or SIGINT stops as soon as the load is over.
    """
    done = threading.Event()
    serving: list[TriageServer] = []  # the server, once it serves
    reload_pending = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        done.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        if not serving:
            log.info(
                "received SIGHUP while loading: will reload %s once serving", config.model_path
            )
            reload_pending.set()
            return
        log.info("received SIGHUP: reloading %s", config.model_path)
        serving[0].reload_in_background()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hangup)
    server = TriageServer(config).start()
    serving.append(server)
    if reload_pending.is_set():
        server.reload_in_background()
    print(f"triage: serving on {config.host}:{server.port}", flush=True)
    if server.metrics_port is not None:
        print(f"triage: metrics on {config.metrics_host}:{server.metrics_port}", flush=True)
    done.wait()
    server.stop()
    return 0
