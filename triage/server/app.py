"""Assemble and run the gRPC server: servicer, health, reflection, reload watcher, shutdown."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from triage.errors import ModelLoadError, TriageError
from triage.live import LiveModel
from triage.server.access_log import AccessLogInterceptor
from triage.server.servicer import TriageServicer
from triage.server.status import StatusInterceptor
from triage.service import ClassificationService, Limits
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["TriageService"].full_name
HEALTH_SERVICES = ("", SERVICE_NAME)


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs, built once by the CLI from flags and environment."""

    model_path: Path = Path("models/current")
    host: str = "127.0.0.1"
    port: int = 50051
    threads: int = 16
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 10.0
    drain_seconds: float = 0.0  # NOT_SERVING this long before refusing calls, for probes to see
    watch_seconds: float = 2.0  # how often to look for a switched models/current; 0: never


class TriageServer:
    """A started server on a bound port, with its live model and health states."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.live = LiveModel(config.model_path)
        self.service = ClassificationService(self.live, config.limits)
        self.health = health.HealthServicer()
        for name in HEALTH_SERVICES:
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        size = config.limits.max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="rpc"),
            interceptors=[AccessLogInterceptor(), StatusInterceptor()],
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),  # a second server on the same port must fail loudly
            ],
        )
        pb_grpc.add_TriageServiceServicer_to_server(TriageServicer(self.service), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        try:
            self.port = self.server.add_insecure_port(f"{config.host}:{config.port}")
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise TriageError(f"cannot listen on {config.host}:{config.port}: in use or not local")
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

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
            self.live.reload()
        except BaseException:
            self.server.stop(0)  # nothing to serve: refuse, and release the port
            raise
        for name in HEALTH_SERVICES:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving model %s on %s:%d", self.live.current.version, self.config.host, self.port
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
        log.info("stopped")

    def _watch(self) -> None:
        while not self._stopping.wait(self.config.watch_seconds):
            try:
                if self.live.changed_on_disk():
                    self._reload_logged()
            except OSError as err:  # e.g. the link is being replaced right now
                log.warning("cannot check %s: %s", self.config.model_path, err)

    def _reload_logged(self) -> None:
        try:
            result = self.live.reload()
        except ModelLoadError as err:
            log.error("reload refused, still serving %s: %s", self.live.current.version, err)
        except Exception:
            log.exception("reload failed, still serving %s", self.live.current.version)
        else:
            if result.changed:
                log.info("reloaded: %s -> %s", result.previous_version, result.model_version)


def serve(config: ServeConfig) -> int:
    """Run until SIGTERM or SIGINT, reloading on SIGHUP; return the process exit code."""
    server = TriageServer(config).start()
    done = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        done.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        log.info("received SIGHUP: reloading %s", config.model_path)
        server.reload_in_background()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hangup)
    print(f"triage: serving on {config.host}:{server.port}", flush=True)
    done.wait()
    server.stop()
    return 0
