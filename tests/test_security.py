"""TLS, mutual TLS, the plaintext policy, bearer tokens and the metrics endpoint."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from triage.cli import main
from triage.core.artifacts import CURRENT
from triage.core.errors import TriageError
from triage.rpc.app import ServeConfig, TriageServer
from triage.rpc.security import TlsConfig
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import start_server
from .pki import Pki, make_pki

TOKEN = "correct-horse-battery-staple-7f3a"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def mtls_server(models_dir: Path, pki: Pki) -> Iterator[TriageServer]:
    server = start_server(models_dir, tls=TlsConfig(pki.server_cert, pki.server_key, pki.ca_path))
    yield server
    server.stop(grace=0)


def _classify(channel: grpc.Channel, **kwargs: object) -> pb.ClassifyResponse:
    stub = pb_grpc.TriageServiceStub(channel)
    response: pb.ClassifyResponse = stub.Classify(
        pb.ClassifyRequest(text="hacked email"), timeout=10, **kwargs
    )
    return response


def test_tls_serves_clients_that_trust_its_ca(models_dir: Path, pki: Pki) -> None:
    server = start_server(models_dir, tls=TlsConfig(pki.server_cert, pki.server_key))
    try:
        target = f"localhost:{server.port}"
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(pki.ca)) as channel:
            assert _classify(channel).model_version == "v1"
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
            _classify(channel)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # no plaintext on a TLS port
    finally:
        server.stop(grace=0)


def test_mutual_tls_admits_only_clients_with_a_certificate_from_its_ca(
    mtls_server: TriageServer, pki: Pki
) -> None:
    target = f"localhost:{mtls_server.port}"
    good = grpc.ssl_channel_credentials(pki.ca, pki.client_key, pki.client_cert)
    with grpc.secure_channel(target, good) as channel:
        assert _classify(channel).label
    for credentials in (
        grpc.ssl_channel_credentials(pki.ca),  # no client certificate
        grpc.ssl_channel_credentials(pki.ca, pki.rogue_key, pki.rogue_cert),
    ):
        with (
            grpc.secure_channel(target, credentials) as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            _classify(channel)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_beyond_loopback_needs_insecure(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(TriageError, match=r"refusing plaintext on 0\.0\.0\.0"):
        TriageServer(ServeConfig(model_path=models_dir / CURRENT, host="0.0.0.0", port=0))
    caplog.set_level(logging.WARNING)
    server = start_server(models_dir, host="0.0.0.0", insecure=True)
    try:
        assert any("PLAINTEXT" in r.getMessage() for r in caplog.records)
    finally:
        server.stop(grace=0)


def test_bearer_tokens_guard_the_service_but_not_health(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = start_server(models_dir, tokens=("another-token", TOKEN))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for metadata in (
                (),
                (("authorization", "Bearer wrong"),),
                (("authorization", f"Basic {TOKEN}"),),
            ):
                with pytest.raises(grpc.RpcError) as caught:
                    _classify(channel, metadata=metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "bearer token" in caught.value.details()
            assert _classify(channel, metadata=(("authorization", f"Bearer {TOKEN}"),)).label
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(grace=0)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert '"status": "UNAUTHENTICATED"' in messages  # refusals reach the access log
    assert TOKEN not in messages and "wrong" not in messages


def test_token_file_is_required_to_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--port", "0", "--token-file", str(tmp_path / "absent")])
    assert code == 1 and "cannot read token file" in capsys.readouterr().err


def test_metrics_are_scraped_over_http(models_dir: Path) -> None:
    server = start_server(models_dir, workers=2, metrics_port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for _ in range(3):
                _classify(channel)
            stub = pb_grpc.TriageServiceStub(channel)
            stub.ClassifyBatch(
                pb.ClassifyBatchRequest(
                    reports=[pb.ClassifyRequest(text="burglary"), pb.ClassifyRequest(text=" ")]
                ),
                timeout=10,
            )
            with pytest.raises(grpc.RpcError):
                stub.Classify(pb.ClassifyRequest(text=""), timeout=10)
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
            .read()
            .decode()
        )
    finally:
        server.stop(grace=0)
    assert 'triage_rpc_calls_total{code="OK",method="Classify"} 3.0' in body
    assert 'triage_rpc_calls_total{code="INVALID_ARGUMENT",method="Classify"} 1.0' in body
    assert 'triage_rpc_calls_total{code="OK",method="ClassifyBatch"} 1.0' in body
    assert "triage_rpc_latency_seconds_bucket" in body
    predicted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("triage_predictions_total{")
    )
    assert predicted == 4.0  # 3 single + 1 valid batch item, counted once across processes
    assert "triage_batch_size_count" in body and "triage_queue_depth" in body
    assert 'triage_model_info{candidate="word_char_svm"' in body and 'version="v1"' in body
    assert 'triage_model_reloads_total{outcome="success"} 1.0' in body
    assert "triage_model_process_restarts 0.0" in body


def test_refused_calls_are_logged_and_counted_under_their_code(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(models_dir, tokens=(TOKEN,), metrics_port=0)
    caplog.set_level(logging.INFO, logger="triage.access")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            with pytest.raises(grpc.RpcError) as unary:
                stub.Classify(pb.ClassifyRequest(text="hacked", report_id="r-1"), timeout=10)
            with pytest.raises(grpc.RpcError) as stream:
                list(stub.ClassifyStream(iter([pb.ClassifyRequest(text="hacked")]), timeout=10))
        registry = server.metrics.registry
        calls = {
            method: registry.get_sample_value(
                "triage_rpc_calls_total", {"method": method, "code": "UNAUTHENTICATED"}
            )
            for method in ("Classify", "ClassifyStream")
        }
        predicted = registry.get_sample_value("triage_predictions_total", {"label": "cybercrime"})
    finally:
        server.stop(grace=0)
    assert unary.value.code() == stream.value.code() == grpc.StatusCode.UNAUTHENTICATED
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "triage.access"]
    assert [{k: v for k, v in e.items() if k not in ("time", "latency_ms")} for e in logged] == [
        {"rpc": "Classify", "status": "UNAUTHENTICATED", "report_id": "r-1"},
        {"rpc": "ClassifyStream", "status": "UNAUTHENTICATED"},
    ]
    assert calls == {"Classify": 1, "ClassifyStream": 1} and predicted is None
