"""The gRPC service over a real channel to a real server on port 0."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client.parser import text_string_to_metric_families

from triage.core.artifacts import CURRENT, MODEL_FILE, write_artifact
from triage.core.model import Prediction, TriageModel
from triage.core.scoring import Outcome
from triage.rpc.app import ServeConfig, TriageServer
from triage.rpc.servicer import _InFlight
from triage.rpc.status import StatusInterceptor
from triage.runtime.microbatch import BatchingConfig
from triage.runtime.service import Limits
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import TINY_CONFIG

SERVICE = "triage.v1.TriageService"


def _config(models_dir: Path, **overrides: object) -> ServeConfig:
    settings: dict[str, object] = {
        "model_path": models_dir / CURRENT,
        "port": 0,
        "workers": 0,
        "limits": Limits(max_text_chars=2_000, max_batch_size=50, max_message_bytes=1 << 20),
        "grace_seconds": 5.0,
        "watch_seconds": 0.1,
    }
    settings.update(overrides)
    return ServeConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def server(models_dir: Path) -> Iterator[TriageServer]:
    running = TriageServer(_config(models_dir)).start()
    yield running
    running.stop(grace=0)


@pytest.fixture
def channel(server: TriageServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.TriageServiceStub:
    return pb_grpc.TriageServiceStub(channel)


def _health(channel: grpc.Channel, service: str = "") -> int:
    check = health_pb2_grpc.HealthStub(channel).Check
    status: int = check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    return status


def test_classify_answers_with_every_field(stub: pb_grpc.TriageServiceStub) -> None:
    r = stub.Classify(
        pb.ClassifyRequest(
            text="Someone logged into my email account and changed the password",
            report_id="call-17",
            max_explanation_terms=2,
        ),
        timeout=5,
    )
    assert r.report_id == "call-17" and r.label == "cybercrime"
    probabilities = [s.probability for s in r.scores]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0) and r.confidence == probabilities[0]
    assert {s.label for s in r.scores} == {"cybercrime", "fraud", "general", "terrorism_concern"}
    assert r.model_version == "v1" and not r.HasField("error")
    assert 1 <= len(r.explanation) <= 2 and all(e.weight > 0 for e in r.explanation)


def test_batch_keeps_order_and_isolates_a_bad_report(
    stub: pb_grpc.TriageServiceStub, tiny_model: TriageModel
) -> None:
    texts = [
        "A man was filming the barriers at the stadium staff entrance",
        "   ",
        "A fake bank caller talked my mother into moving her savings",
        "x" * 2_001,
    ]
    response = stub.ClassifyBatch(
        pb.ClassifyBatchRequest(
            reports=[pb.ClassifyRequest(text=t, report_id=f"r{i}") for i, t in enumerate(texts)]
        ),
        timeout=5,
    )
    assert [r.report_id for r in response.results] == ["r0", "r1", "r2", "r3"]
    assert response.model_version == "v1"
    expected = tiny_model.predict([texts[0], texts[2]])
    assert response.results[0].label == expected[0].label
    assert response.results[0].confidence == pytest.approx(expected[0].confidence)
    assert response.results[2].label == expected[1].label
    assert response.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "empty" in response.results[1].error.message and not response.results[1].label
    assert "2,001 characters, over the limit of 2,000" in response.results[3].error.message


def test_stream_answers_each_report_and_survives_a_bad_one(
    stub: pb_grpc.TriageServiceStub, tiny_model: TriageModel
) -> None:
    texts = ["My instagram account was taken over by a hacker", "", "burglars took jewellery"]
    requests = [pb.ClassifyRequest(text=t, report_id=f"s{i}") for i, t in enumerate(texts)]
    answers = list(stub.ClassifyStream(iter(requests), timeout=5))
    assert [a.report_id for a in answers] == ["s0", "s1", "s2"]
    expected = tiny_model.predict([texts[0], texts[2]])
    assert [answers[0].label, answers[2].label] == [e.label for e in expected]
    assert answers[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_model_info(stub: pb_grpc.TriageServiceStub) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
    assert info.version == "v1" and list(info.labels) == sorted(info.labels)
    assert len(info.labels) == 4 and info.candidate == TINY_CONFIG.candidate
    assert info.review_threshold > 0 and info.review_target_precision == 0.99
    assert {"test_macro_f1", "cv_macro_f1", "test_ece"} <= set(info.metrics)
    assert (info.limits.max_text_chars, info.limits.max_batch_size) == (2_000, 50)


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (pb.ClassifyRequest(text=""), grpc.StatusCode.INVALID_ARGUMENT, "text is empty"),
        (pb.ClassifyRequest(text=" \n\t "), grpc.StatusCode.INVALID_ARGUMENT, "only whitespace"),
        (
            pb.ClassifyRequest(text="y" * 2_001),
            grpc.StatusCode.INVALID_ARGUMENT,
            "over the limit of 2,000",
        ),
        (
            pb.ClassifyRequest(text="ok", max_explanation_terms=51),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_explanation_terms must be between 0 and 50",
        ),
        (
            pb.ClassifyRequest(text="z" * (1 << 20)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "larger than max",
        ),
    ],
)
def test_bad_requests_get_their_code_and_message(
    stub: pb_grpc.TriageServiceStub,
    request_: pb.ClassifyRequest,
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Classify(request_, timeout=5)
    assert caught.value.code() == code
    assert message in caught.value.details()
    assert "Traceback" not in caught.value.details()


def test_oversized_batch_is_refused_as_a_whole(stub: pb_grpc.TriageServiceStub) -> None:
    request = pb.ClassifyBatchRequest(reports=[pb.ClassifyRequest(text="hi")] * 51)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ClassifyBatch(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch has 51 reports, over the limit of 50" in caught.value.details()


def test_health_is_serving_only_after_the_model_is_loaded(models_dir: Path) -> None:
    server = TriageServer(_config(models_dir)).listen()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.TriageServiceStub(channel).Classify(
                    pb.ClassifyRequest(text="hi"), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            server.activate()
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(grace=0)


def test_a_server_without_a_loadable_model_refuses_to_start(tmp_path: Path) -> None:
    from triage.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no model card"):
        TriageServer(_config(tmp_path)).start()


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {SERVICE, "grpc.health.v1.Health"} <= services
    method = database.FindFileContainingSymbol(SERVICE)
    assert method.name == "triage/v1/triage.proto"


def test_a_call_past_its_deadline_is_not_scored(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One report per model call, so calls queue in the batcher behind slow ones.
    server = TriageServer(
        _config(
            models_dir,
            workers=1,
            batching=BatchingConfig(max_batch=1),
            limits=Limits(max_text_chars=100_000),
        )
    ).start()
    caplog.set_level(logging.INFO, logger="triage.access")

    # Words never seen before, so no call is cheap (the features cache words it has seen):
    # the twenty queued calls take far longer than the late call's deadline.
    def slow_text(i: int) -> str:
        return " ".join(f"parcel{i}x{j} left by a man" for j in range(1500))

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            busy = [
                stub.Classify.future(
                    pb.ClassifyRequest(text=slow_text(i), report_id=f"b{i}"), timeout=60
                )
                for i in range(40)
            ]
            assert server.batcher is not None
            waited = time.monotonic() + 30
            while server.batcher.queue_depth < 20:  # the late call must queue behind them
                assert time.monotonic() < waited, "the slow calls never queued"
                time.sleep(0.005)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Classify(
                    pb.ClassifyRequest(text="late report", report_id="late"), timeout=0.05
                )
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert all(f.result().label for f in busy)
            time.sleep(0.5)  # if it was queued, its lane reaches it after the busy calls
    finally:
        server.stop(grace=0)
    late = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "triage.access" and '"late"' in r.getMessage()
    ]
    # It waited in the batcher's queue past its deadline and was dropped there, unscored.
    assert late and all("label" not in entry for entry in late), late
    assert all(entry["status"] == "DEADLINE_EXCEEDED" for entry in late)


def test_hot_reload_under_load_drops_no_call(
    models_dir: Path, server: TriageServer, tiny_result: TrainResult
) -> None:
    target = f"127.0.0.1:{server.port}"
    seen: list[list[str]] = [[] for _ in range(4)]
    failures: list[BaseException] = []
    stop = threading.Event()

    def hammer(slot: int) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            while not stop.is_set():
                try:
                    r = stub.Classify(
                        pb.ClassifyRequest(text=f"my card was cloned {slot}"), timeout=10
                    )
                    seen[slot].append(r.model_version)
                except grpc.RpcError as err:
                    failures.append(err)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    link = models_dir / ".switch"
    link.symlink_to("v2")
    os.replace(link, models_dir / CURRENT)  # as `triage promote` does
    deadline = time.monotonic() + 10
    while server.engine.card.version != "v2" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert not failures
    assert server.engine.card.version == "v2"
    for versions in seen:
        assert versions and versions[0] == "v1" and versions[-1] == "v2"
        switch = versions.index("v2")
        assert set(versions[switch:]) == {"v2"}  # never back to the old model


def test_a_tampered_model_is_refused_on_reload_and_the_old_one_keeps_serving(
    models_dir: Path,
    server: TriageServer,
    channel: grpc.Channel,
    stub: pb_grpc.TriageServiceStub,
    tiny_result: TrainResult,
) -> None:
    write_artifact(models_dir, "v3", tiny_result.pipeline, tiny_result.card)
    (models_dir / "v3" / MODEL_FILE).write_bytes(b"cos\nsystem\n(S'echo owned'\ntR.")
    (models_dir / ".switch").symlink_to("v3")
    os.replace(models_dir / ".switch", models_dir / CURRENT)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ReloadModel(pb.ReloadModelRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not match the model card" in caught.value.details()
    assert stub.Classify(pb.ClassifyRequest(text="burglary"), timeout=5).model_version == "v1"
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_reload_rpc_reports_no_change_when_nothing_moved(stub: pb_grpc.TriageServiceStub) -> None:
    result = stub.ReloadModel(pb.ReloadModelRequest(), timeout=10)
    assert (result.previous_version, result.model_version, result.changed) == ("v1", "v1", False)


def test_access_log_never_holds_report_text(
    stub: pb_grpc.TriageServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Jane Roe of 12 Hidden Lane says her neighbour hacked her router"
    stub.Classify(pb.ClassifyRequest(text=secret, report_id="pii-1"), timeout=5)
    stub.ClassifyBatch(
        pb.ClassifyBatchRequest(reports=[pb.ClassifyRequest(text=secret, report_id="pii-2")]),
        timeout=5,
    )
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "triage.access"]
    assert {e["report_id"] for e in access} >= {"pii-1", "pii-2"}
    for entry in access:
        assert {"time", "rpc", "status", "latency_ms"} <= set(entry)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "Hidden Lane" not in everything and "Jane Roe" not in everything


def test_unexpected_errors_become_internal_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise ValueError("secret detail from a server bug")

    handler = grpc.method_handlers_generic_handler(
        "test.Broken", {"Call": grpc.unary_unary_rpc_method_handler(broken)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[StatusInterceptor()])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            channel.unary_unary("/test.Broken/Call")(b"", timeout=5)
    finally:
        server.stop(0)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in caught.value.details() and "incident" in caught.value.details()
    assert any("secret detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    """The access log's entries, in order, with the fields that vary from run to run checked
    for shape and then dropped."""
    entries = []
    for record in caplog.records:
        if record.name != "triage.access":
            continue
        entry = json.loads(record.getMessage())
        assert list(entry)[:4] == ["time", "rpc", "status", "latency_ms"]
        assert isinstance(entry.pop("latency_ms"), float | int)
        assert entry.pop("time").endswith("+00:00")
        entries.append(entry)
    return entries


def _scored(rpc: str, report_id: str, prediction: Prediction) -> dict[str, object]:
    return {
        "rpc": rpc,
        "status": "OK",
        "report_id": report_id,
        "label": prediction.label,
        "confidence": round(prediction.confidence, 4),
        "needs_review": prediction.needs_review,
        "model_version": "v1",
    }


GOOD = (
    "Someone logged into my email account and changed the password",
    "A fake bank caller talked my mother into moving her savings",
    "A man was filming the barriers at the stadium staff entrance",
)


def _scrape(port: int | None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_every_rpc_is_logged_and_counted_by_report(
    models_dir: Path, tiny_model: TriageModel, caplog: pytest.LogCaptureFixture
) -> None:
    server = TriageServer(_config(models_dir, metrics_port=0)).start()
    caplog.set_level(logging.INFO, logger="triage.access")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            stub.Classify(pb.ClassifyRequest(text=GOOD[0], report_id="one"), timeout=5)
            with pytest.raises(grpc.RpcError):
                stub.Classify(pb.ClassifyRequest(text="", report_id="empty"), timeout=5)
            stub.ClassifyBatch(
                pb.ClassifyBatchRequest(
                    reports=[
                        pb.ClassifyRequest(text=GOOD[1], report_id="b0"),
                        pb.ClassifyRequest(text="   ", report_id="b1"),
                        pb.ClassifyRequest(text=GOOD[2], report_id="b2"),
                    ]
                ),
                timeout=5,
            )
            stub.ClassifyBatch(pb.ClassifyBatchRequest(), timeout=5)  # no reports: no line
            with pytest.raises(grpc.RpcError):
                stub.ClassifyBatch(
                    pb.ClassifyBatchRequest(reports=[pb.ClassifyRequest(text="hi")] * 51),
                    timeout=5,
                )
            streamed = [
                pb.ClassifyRequest(text=GOOD[2], report_id="s0"),
                pb.ClassifyRequest(text="", report_id="s1"),
                pb.ClassifyRequest(text=GOOD[0], report_id="s2"),
            ]
            assert len(list(stub.ClassifyStream(iter(streamed), timeout=5))) == 3
            stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
            stub.ReloadModel(pb.ReloadModelRequest(), timeout=5)
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING  # not logged
        metrics = _scrape(server.metrics_port)
    finally:
        server.stop(grace=0)
    p = tiny_model.predict(list(GOOD))
    refused = {"status": "INVALID_ARGUMENT"}
    assert _access_lines(caplog) == [
        _scored("Classify", "one", p[0]),
        {"rpc": "Classify", **refused, "report_id": "empty"},
        _scored("ClassifyBatch", "b0", p[1]),
        {"rpc": "ClassifyBatch", **refused, "report_id": "b1"},
        _scored("ClassifyBatch", "b2", p[2]),
        {"rpc": "ClassifyBatch", **refused},
        _scored("ClassifyStream", "s0", p[2]),
        {"rpc": "ClassifyStream", **refused, "report_id": "s1"},
        _scored("ClassifyStream", "s2", p[0]),
        {"rpc": "GetModelInfo", "status": "OK", "model_version": "v1"},
        {"rpc": "ReloadModel", "status": "OK", "model_version": "v1"},
    ]
    calls = {
        (dict(labels)["method"], dict(labels)["code"]): value
        for (name, labels), value in metrics.items()
        if name == "triage_rpc_calls_total"
    }
    assert calls == {
        ("Classify", "OK"): 1,
        ("Classify", "INVALID_ARGUMENT"): 1,
        ("ClassifyBatch", "OK"): 2,
        ("ClassifyBatch", "INVALID_ARGUMENT"): 1,
        ("ClassifyStream", "OK"): 1,
        ("GetModelInfo", "OK"): 1,
        ("ReloadModel", "OK"): 1,
        ("Check", "OK"): 1,
    }
    predicted = [p[0], p[1], p[2], p[2], p[0]]  # every scored report, refused ones not
    by_label = {
        dict(labels)["label"]: value
        for (name, labels), value in metrics.items()
        if name == "triage_predictions_total"
    }
    assert by_label == {
        label: sum(x.label == label for x in predicted) for label in {x.label for x in predicted}
    }
    assert metrics[("triage_needs_review_total", ())] == sum(x.needs_review for x in predicted)
    assert metrics[("triage_rpc_latency_seconds_count", (("method", "ClassifyStream"),))] == 1


def test_concurrent_calls_each_log_and_count_only_their_own_reports(
    models_dir: Path, tiny_model: TriageModel, caplog: pytest.LogCaptureFixture
) -> None:
    # Streams and unary calls interleave on the server's threads; a result reported for the
    # wrong call would show as a wrong label, a lost report or one counted twice.
    texts = [f"{GOOD[i % 3]} ({i})" for i in range(60)]
    expected = {f"r{i}": p.label for i, p in enumerate(tiny_model.predict(texts))}
    server = TriageServer(_config(models_dir, metrics_port=0, max_in_flight=8)).start()
    caplog.set_level(logging.INFO, logger="triage.access")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)

            def stream(first: int) -> None:
                requests = (
                    pb.ClassifyRequest(text=texts[i], report_id=f"r{i}")
                    for i in range(first, first + 10)
                )
                assert len(list(stub.ClassifyStream(requests, timeout=30))) == 10

            def unary(i: int) -> None:
                stub.Classify(pb.ClassifyRequest(text=texts[i], report_id=f"r{i}"), timeout=30)

            with futures.ThreadPoolExecutor(6) as callers:
                done = [callers.submit(stream, first) for first in (0, 10, 20)]
                done += [callers.submit(unary, i) for i in range(30, 60)]
                for call in done:
                    call.result()
        metrics = _scrape(server.metrics_port)
    finally:
        server.stop(grace=0)
    logged = {str(e["report_id"]): e["label"] for e in _access_lines(caplog)}
    assert logged == expected
    assert len(_access_lines(caplog)) == len(texts)
    counted = sum(v for (name, _), v in metrics.items() if name == "triage_predictions_total")
    assert counted == len(texts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field, as a client that does not check UTF-8 sends it."""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _request(text: bytes, report_id: bytes) -> bytes:
    return _field(1, text) + _field(2, report_id)


BAD_UTF8 = b"my email was hacked \xff\xfe by someone"


def test_invalid_utf8_refuses_only_the_report_that_holds_it(
    channel: grpc.Channel, tiny_model: TriageModel
) -> None:
    def call(method: str, response: type[Any]) -> Any:
        return channel.unary_unary(
            f"/{SERVICE}/{method}", response_deserializer=response.FromString
        )

    classify = call("Classify", pb.ClassifyResponse)
    for request, problem in (
        (_request(BAD_UTF8, b"u1"), "text is not valid UTF-8 (byte 20 of 33)"),
        (_request(GOOD[0].encode(), b"u\xc3"), "report_id is not valid UTF-8"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            classify(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert problem in caught.value.details()
    reports = [
        _request(GOOD[0].encode(), b"b0"),
        _request(BAD_UTF8, b"b1"),
        _request(GOOD[1].encode(), b"\xed\xa0\x80"),  # an encoded surrogate is not UTF-8
        _request(GOOD[2].encode(), b"b3"),
    ]
    batch = call("ClassifyBatch", pb.ClassifyBatchResponse)(
        b"".join(_field(1, r) for r in reports), timeout=5
    )
    expected = tiny_model.predict([GOOD[0], GOOD[2]])
    assert [r.report_id for r in batch.results] == ["b0", "b1", "", "b3"]
    assert [batch.results[0].label, batch.results[3].label] == [e.label for e in expected]
    for refused in batch.results[1:3]:
        assert refused.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "not valid UTF-8" in refused.error.message and not refused.label
    stream = channel.stream_stream(
        f"/{SERVICE}/ClassifyStream", response_deserializer=pb.ClassifyResponse.FromString
    )
    answers = list(stream(iter([reports[0], reports[1], b"\x0a\xff", reports[3]]), timeout=5))
    assert [a.report_id for a in answers] == ["b0", "b1", "", "b3"]  # the stream went on
    assert answers[0].label == expected[0].label and answers[3].label == expected[1].label
    assert "not valid UTF-8" in answers[1].error.message
    assert "not a valid protobuf message" in answers[2].error.message  # truncated: 0xff bytes


def test_report_ids_are_limited_and_never_echoed_or_logged_beyond_it(
    stub: pb_grpc.TriageServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triage.access")
    longest = "é" * 256  # characters, not bytes
    assert stub.Classify(pb.ClassifyRequest(text=GOOD[0], report_id=longest), timeout=5).label
    for report_id, problem in (
        ("x" * 257, "report_id has 257 characters, over the limit of 256"),
        ("y" * 1_000_000, "report_id is 1,000,000 bytes, over the limit of 256 characters"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Classify(pb.ClassifyRequest(text=GOOD[0], report_id=report_id), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().endswith(problem)
    batch = stub.ClassifyBatch(
        pb.ClassifyBatchRequest(
            reports=[
                pb.ClassifyRequest(text=GOOD[1], report_id="z" * 10_000),
                pb.ClassifyRequest(text=GOOD[2], report_id="fine"),
            ]
        ),
        timeout=5,
    )
    assert (
        batch.results[0].report_id == ""
        and "over the limit of 256" in batch.results[0].error.message
    )
    assert batch.results[1].report_id == "fine" and batch.results[1].label
    lines = [r.getMessage() for r in caplog.records if r.name == "triage.access"]
    assert len(lines) == 5 and max(len(line) for line in lines) < 2_000  # 256 x "\\u00e9" at most
    assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).limits.max_report_id_chars == 256


def test_a_stream_keeps_many_reports_in_flight_and_they_are_batched_together(
    models_dir: Path, tiny_model: TriageModel
) -> None:
    # A serial stream scores one report per model call (300 calls for 300 reports, always); a
    # pipelined one reads ahead while a report is scored, so the batcher finds several of its
    # reports queued and scores them together. Long reports make scoring slower than reading
    # a message, however loaded the machine. Answers keep the request order, each its own.
    texts = [f"{GOOD[i % 3]} ({i}) " + " ".join(GOOD) * 12 for i in range(300)]
    texts = [t[:1_990] for t in texts]
    expected = [p.label for p in tiny_model.predict(texts)]
    server = TriageServer(_config(models_dir, metrics_port=0)).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            requests = (pb.ClassifyRequest(text=t, report_id=f"r{i}") for i, t in enumerate(texts))
            answers = list(stub.ClassifyStream(requests, timeout=120))
        metrics = _scrape(server.metrics_port)
    finally:
        server.stop(grace=0)
    assert [a.report_id for a in answers] == [f"r{i}" for i in range(300)]
    assert [a.label for a in answers] == expected
    assert metrics[("triage_batch_size_sum", ())] == 300
    assert metrics[("triage_batch_size_count", ())] <= 240  # model calls: some batched


def test_a_cancelled_stream_stops_its_reader(models_dir: Path) -> None:
    server = TriageServer(_config(models_dir)).start()
    gate = threading.Event()

    def requests() -> Iterator[pb.ClassifyRequest]:
        yield pb.ClassifyRequest(text=GOOD[0], report_id="a")
        gate.wait(10)  # the client has more to send, and cancels before it does

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = pb_grpc.TriageServiceStub(channel).ClassifyStream(requests(), timeout=30)
            assert next(call).report_id == "a"
            call.cancel()
            gate.set()
        deadline = time.monotonic() + 10
        while any(t.name == "stream-reader" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the stream's reader thread outlived the call"
            time.sleep(0.02)
    finally:
        server.stop(grace=0)


def test_a_stream_reads_ahead_within_its_count_and_text_bounds() -> None:
    in_flight = _InFlight(most=3, most_bytes=100)
    assert in_flight.reserve(500)  # a report over the text bound still goes, alone
    in_flight.append(lambda: Outcome("big"), 500)
    blocked = threading.Thread(target=lambda: in_flight.reserve(10))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # no room until the big one is answered
    waiting = in_flight.next()
    assert waiting is not None and waiting().report_id == "big"
    in_flight.answered()
    blocked.join(5)
    assert not blocked.is_alive()
    in_flight.append(lambda: Outcome("a"), 10)
    assert in_flight.reserve(10)  # count 2 of 3, 20 of 100 bytes
    in_flight.append(lambda: Outcome("b"), 10)
    assert in_flight.reserve(10)  # 3 of 3
    in_flight.append(lambda: Outcome("c"), 10)
    full = threading.Thread(target=lambda: in_flight.reserve(1))
    full.start()
    full.join(0.2)
    assert full.is_alive()  # the count bound
    in_flight.stop()  # the call ended: a reader waiting for room gives up
    full.join(5)
    assert not full.is_alive() and not in_flight.reserve(1)


def test_a_stream_whose_scoring_fails_ends_without_waiting_for_the_client(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault that is no report's doing (here, injected into the service) ends the stream
    # with INTERNAL at once, although the client keeps it open and sends nothing more; the
    # request budget is whole again after it.
    server = TriageServer(_config(models_dir)).start()

    def broken(*args: object, **kwargs: object) -> Callable[[], Outcome]:
        def collect() -> Outcome:
            raise RuntimeError("injected fault")

        return collect

    monkeypatch.setattr(server.service, "classify_later", broken)
    gate = threading.Event()

    def requests() -> Iterator[pb.ClassifyRequest]:
        yield pb.ClassifyRequest(text="x" * 70_000, report_id="a")  # over the free size
        gate.wait(20)

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                list(pb_grpc.TriageServiceStub(channel).ClassifyStream(requests(), timeout=15))
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert time.monotonic() - started < 5
            gate.set()
        deadline = time.monotonic() + 10
        while server.budget.in_use:
            assert time.monotonic() < deadline, "the stream's message stayed on the budget"
            time.sleep(0.02)
    finally:
        gate.set()
        server.stop(grace=0)
