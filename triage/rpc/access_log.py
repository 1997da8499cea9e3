"""Structured access log: one JSON line per scored report or call, never the report text."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc

from triage.core.scoring import Outcome
from triage.rpc import call_record
from triage.rpc.call_record import CallRecord
from triage.rpc.call_status import final_status
from triage.rpc.status_codes import code_for
from triage.rpc.wrapping import WrappingInterceptor, wrap_handler

SERVICE_PREFIX = "/triage.v1.TriageService/"
access_log = logging.getLogger("triage.access")


class AccessLogInterceptor(WrappingInterceptor):
    """Logs TriageService calls to the ``triage.access`` logger; health and reflection are not
    logged (probes would drown the log)."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if not method.startswith(SERVICE_PREFIX):
            return handler
        rpc = method[len(SERVICE_PREFIX) :]
        return wrap_handler(
            handler,
            unary=lambda b, r, c: _unary(rpc, b, r, c),
            streaming=lambda b, r, c: _streaming(rpc, b, r, c),
        )


def _unary(rpc: str, behaviour: Callable[..., Any], request: Any, context: Any) -> Any:
    """One line per report the call answered (a batch: one each, all with the call's latency),
    or one for the call."""
    record = call_record.current()
    started = time.perf_counter()
    finished = False
    try:
        response = behaviour(request, context)
        finished = True
        return response
    finally:
        if access_log.isEnabledFor(logging.INFO):
            latency = (time.perf_counter() - started) * 1000
            # A refused call answered no report: name the one it asked about, if it got as far
            # as a valid id (a call refused for its token or capacity never did).
            _log_answers(rpc, final_status(context, finished), latency, record, record.report_id)


def _streaming(
    rpc: str, behaviour: Callable[..., Iterator[Any]], request: Any, context: Any
) -> Iterator[Any]:
    """One line per response, timed from the one before; one more if the stream failed."""
    record = call_record.current()
    last = time.perf_counter()
    finished = False
    try:
        for response in behaviour(request, context):
            now = time.perf_counter()
            if access_log.isEnabledFor(logging.INFO):
                _log_answers(rpc, "OK", (now - last) * 1000, record)
            last = now
            yield response
        finished = True
    finally:
        status = final_status(context, finished)
        if status != "OK" and access_log.isEnabledFor(logging.INFO):
            _log_call(rpc, status, (time.perf_counter() - last) * 1000)


def _log_answers(
    rpc: str, status: str, latency_ms: float, record: CallRecord, asked_about: str = ""
) -> None:
    if record.outcomes is None:
        _log_call(rpc, status, latency_ms, asked_about, record.model_version)
    else:
        _log_outcomes(rpc, status, latency_ms, record.outcomes)


def _log_outcomes(rpc: str, status: str, latency_ms: float, outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        entry = _entry(rpc, status, latency_ms)
        entry["report_id"] = outcome.report_id
        prediction = outcome.prediction
        if prediction is not None:
            entry.update(
                label=prediction.label,
                confidence=round(prediction.confidence, 4),
                needs_review=prediction.needs_review,
                model_version=prediction.model_version,
            )
        elif outcome.error is not None:
            entry["status"] = code_for(outcome.error).name
        access_log.info(json.dumps(entry))


def _log_call(
    rpc: str,
    status: str,
    latency_ms: float,
    report_id: str = "",
    model_version: str | None = None,
) -> None:
    entry = _entry(rpc, status, latency_ms)
    if model_version is not None:
        entry["model_version"] = model_version
    elif report_id:
        entry["report_id"] = report_id
    access_log.info(json.dumps(entry))


def _entry(rpc: str, status: str, latency_ms: float) -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "rpc": rpc,
        "status": status,
        "latency_ms": round(latency_ms, 3),
    }
