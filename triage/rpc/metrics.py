"""Prometheus metrics of one server, on their own HTTP port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from triage.core.scoring import Outcome
from triage.rpc import call_record
from triage.rpc.call_status import final_status
from triage.rpc.wrapping import WrappingInterceptor, wrap_handler

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """Every metric the server exports. Model processes compute but never record: all calls,
    batches and predictions pass through the front process, so one registry is complete."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "triage_rpc_calls",
            "Finished RPCs by method and status code.",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "triage_rpc_latency_seconds",
            "RPC latency by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "triage_batch_size", "Reports per model call.", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "triage_queue_depth", "Reports waiting for a model call.", registry=r
        )
        self.predictions = Counter(
            "triage_predictions", "Reports classified, by label.", ["label"], registry=r
        )
        self.needs_review = Counter(
            "triage_needs_review", "Reports flagged for human review.", registry=r
        )
        self.model = Info("triage_model", "The model serving now.", registry=r)
        self.reloads = Counter(
            "triage_model_reloads", "Model reloads by outcome.", ["outcome"], registry=r
        )
        self.worker_restarts = CounterReading(
            "triage_model_process_restarts",
            "Model processes restarted after dying or hanging.",
            registry=r,
        )
        self.model_refused = Gauge(
            "triage_model_refused",
            "1 while the model path leads to a model a reload refused (the previous one serves).",
            registry=r,
        )
        self.calls_in_flight = Gauge(
            "triage_calls_in_flight",
            "Calls holding a capacity slot: kind unary, or stream (long-lived streams).",
            ["kind"],
            registry=r,
        )
        self.request_bytes_in_flight = Gauge(
            "triage_request_bytes_in_flight",
            "Bytes of large request messages being handled, against the request budget.",
            registry=r,
        )
        self.refusals = Counter(
            "triage_capacity_refusals",
            "Calls or stream messages refused at a capacity limit: unary, streams, "
            "connection_streams or request_bytes.",
            ["limit"],
            registry=r,
        )
        # The decision record: read from the journal and the shadow scorer when scraped.
        self.record_pending = Gauge(
            "triage_record_pending",
            "Decisions answered and spooled but not yet written to the store (queue depth).",
            registry=r,
        )
        self.record_spool_bytes = Gauge(
            "triage_record_spool_bytes",
            "Bytes of the local decision spool on disk (grows while the store is down).",
            registry=r,
        )
        self.record_store_up = Gauge(
            "triage_record_store_up",
            "1 while the decision record's store takes writes, 0 while it is down.",
            registry=r,
        )
        self.record_written = CounterReading(
            "triage_record_written", "Decisions written to the store.", registry=r
        )
        self.record_write_failures = CounterReading(
            "triage_record_write_failures",
            "Failed batch writes to the store (each retried from the spool).",
            registry=r,
        )
        self.shadow = Gauge(
            "triage_shadow_reports",
            "Shadow scoring of live reports: offered, sampled, scored, dropped_queue_full, "
            "dropped_failed (counts since start).",
            ["outcome"],
            registry=r,
        )
        self._http: Any = None

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose /metrics over HTTP; returns the bound port (``port`` 0 picks one)."""
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._http.server_port)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def count_predictions(self, outcomes: Sequence[Outcome] | None) -> None:
        for outcome in outcomes or ():
            prediction = outcome.prediction
            if prediction is not None:
                self.predictions.labels(prediction.label).inc()
                if prediction.needs_review:
                    self.needs_review.inc()


class CounterReading(Collector):
    """A counter whose count is kept elsewhere (by the runtime, which has no Prometheus) and
    read at each scrape; exported as ``<name>_total``, like any counter."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._name, self._documentation = name, documentation
        self._read: Callable[[], float] = lambda: 0.0
        registry.register(self)

    def set_function(self, read: Callable[[], float]) -> None:
        self._read = read

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())


class MetricsInterceptor(WrappingInterceptor):
    """Counts calls by method and code, times them, and tallies their predictions."""

    def __init__(self, metrics: ServerMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def wrap(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        method = full_method.rsplit("/", 1)[-1]
        m = self.metrics

        def unary(behaviour: Callable[..., Any], request: Any, context: Any) -> Any:
            record = call_record.current()
            started = time.perf_counter()
            finished = False
            try:
                response = behaviour(request, context)
                finished = True
                return response
            finally:
                if finished:
                    m.count_predictions(record.outcomes)
                m.calls.labels(method, final_status(context, finished)).inc()
                m.latency.labels(method).observe(time.perf_counter() - started)

        def streaming(
            behaviour: Callable[..., Iterator[Any]], request: Any, context: Any
        ) -> Iterator[Any]:
            record = call_record.current()
            started = time.perf_counter()
            finished = False
            try:
                for response in behaviour(request, context):
                    m.count_predictions(record.outcomes)
                    yield response
                finished = True
            finally:
                m.calls.labels(method, final_status(context, finished)).inc()
                m.latency.labels(method).observe(time.perf_counter() - started)

        return wrap_handler(handler, unary=unary, streaming=streaming)
