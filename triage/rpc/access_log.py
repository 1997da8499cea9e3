"""Structured access log: one JSON line per scored report or call, never the report text."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc

from triage.rpc.wrapping import WrappingInterceptor, wrap_handler
from triage.v1 import triage_pb2 as pb

SERVICE_PREFIX = "/triage.v1.TriageService/"
access_log = logging.getLogger("triage.access")
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


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
    started = time.perf_counter()
    response = None
    try:
        response = behaviour(request, context)
        return response
    finally:
        latency = (time.perf_counter() - started) * 1000
        status = _status(context, ok=response is not None)
        if isinstance(response, pb.ClassifyBatchResponse):
            for result in response.results:
                _emit(rpc, status, latency, result)
        else:
            fallback = getattr(request, "report_id", "")
            _emit(rpc, status, latency, response, report_id=fallback)


def _streaming(
    rpc: str, behaviour: Callable[..., Iterator[Any]], request: Any, context: Any
) -> Iterator[Any]:
    last = time.perf_counter()
    finished = False
    try:
        for response in behaviour(request, context):
            now = time.perf_counter()
            _emit(rpc, "OK", (now - last) * 1000, response)
            last = now
            yield response
        finished = True
    finally:
        status = _status(context, ok=finished)
        if status != "OK":
            _emit(rpc, status, (time.perf_counter() - last) * 1000, None)


def _status(context: Any, ok: bool) -> str:
    code = context.code()
    if code is not None:
        return str(code.name)
    if ok:
        return "OK"
    return "CANCELLED" if not context.is_active() else "UNKNOWN"


def _emit(rpc: str, status: str, latency_ms: float, response: Any, report_id: str = "") -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "rpc": rpc,
        "status": status,
        "latency_ms": round(latency_ms, 3),
    }
    if isinstance(response, pb.ClassifyResponse):
        entry["report_id"] = response.report_id
        if response.HasField("error"):
            entry["status"] = _CODE_NAMES.get(response.error.code, "UNKNOWN")
        else:
            entry.update(
                label=response.label,
                confidence=round(response.confidence, 4),
                needs_review=response.needs_review,
                model_version=response.model_version,
            )
    elif isinstance(response, pb.ModelInfo):
        entry["model_version"] = response.version
    elif isinstance(response, pb.ReloadModelResponse):
        entry["model_version"] = response.model_version
    elif report_id:
        entry["report_id"] = report_id
    access_log.info(json.dumps(entry))
