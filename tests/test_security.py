"""TLS, mutual TLS, the plaintext policy, bearer tokens and the metrics endpoint."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from triage.cli import main
from triage.core.artifacts import CURRENT, MODEL_FILE, write_artifact
from triage.core.errors import TriageError
from triage.rpc.app import ServeConfig, TriageServer
from triage.rpc.security import TlsConfig
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import REPO, TINY_CONFIG, start_server
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
    assert (
        f'triage_model_info{{candidate="{TINY_CONFIG.candidate}"' in body and 'version="v1"' in body
    )
    assert 'triage_model_reloads_total{outcome="success"} 1.0' in body
    assert "triage_model_process_restarts_total 0.0" in body


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
    # A call without a valid token is refused before its request is read: no id is logged.
    assert [{k: v for k, v in e.items() if k not in ("time", "latency_ms")} for e in logged] == [
        {"rpc": "Classify", "status": "UNAUTHENTICATED"},
        {"rpc": "ClassifyStream", "status": "UNAUTHENTICATED"},
    ]
    assert calls == {"Classify": 1, "ClassifyStream": 1} and predicted is None


ADMIN = "admin-token-9c2e-reload-only-by-ops"


def _reload(channel: grpc.Channel, token: str | None = None) -> pb.ReloadModelResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    stub = pb_grpc.TriageServiceStub(channel)
    response: pb.ReloadModelResponse = stub.ReloadModel(
        pb.ReloadModelRequest(), timeout=10, metadata=metadata
    )
    return response


def test_reload_needs_an_admin_token(models_dir: Path) -> None:
    server = start_server(models_dir, tokens=(TOKEN,), admin_tokens=(ADMIN,))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for token, code in ((TOKEN, "PERMISSION_DENIED"), (None, "UNAUTHENTICATED")):
                with pytest.raises(grpc.RpcError) as caught:
                    _reload(channel, token)
                assert caught.value.code().name == code
            assert "needs an admin token" in _details_of(channel, TOKEN)
            assert _reload(channel, ADMIN).model_version == "v1"
            assert _classify(channel, metadata=(("authorization", f"Bearer {ADMIN}"),)).label
            assert _classify(channel, metadata=(("authorization", f"Bearer {TOKEN}"),)).label
    finally:
        server.stop(grace=0)


def _details_of(channel: grpc.Channel, token: str) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        _reload(channel, token)
    return str(caught.value.details())


def test_admin_tokens_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    from triage.cli import parse_arguments
    from triage.cli.serve_command import serve_config

    admins = tmp_path / "admins"
    admins.write_text("# ops\nadmin-one\n\nadmin-two\n")
    config = serve_config(
        parse_arguments(["serve", "--admin-token-file", str(admins)], {"TRIAGE_TOKENS": "c1"})
    )
    assert (config.tokens, config.admin_tokens) == (("c1",), ("admin-one", "admin-two"))
    config = serve_config(parse_arguments(["serve"], {"TRIAGE_ADMIN_TOKENS": "a1, a2"}))
    assert (config.tokens, config.admin_tokens) == ((), ("a1", "a2"))


def test_without_tokens_reload_is_open_only_on_loopback(models_dir: Path) -> None:
    server = start_server(models_dir, host="0.0.0.0", insecure=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                _reload(channel)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "without tokens" in caught.value.details()
            assert _classify(channel).label  # everything else stays open, as configured
    finally:
        server.stop(grace=0)


def test_reload_errors_name_the_version_not_server_paths(
    models_dir: Path, tiny_result: TrainResult
) -> None:
    server = start_server(models_dir)
    write_artifact(models_dir, "v3", tiny_result.pipeline, tiny_result.card)
    (models_dir / "v3" / MODEL_FILE).write_bytes(b"not the pipeline the card describes")
    (models_dir / ".switch").symlink_to("v3")
    os.replace(models_dir / ".switch", models_dir / CURRENT)
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            _reload(channel)
    finally:
        server.stop(grace=0)
    details = caught.value.details()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "v3" in details
    assert str(models_dir.parent) not in details and " /" not in f" {details}", details


def test_unauthenticated_calls_never_log_the_ids_they_sent(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(models_dir, tokens=(TOKEN,))
    caplog.set_level(logging.INFO, logger="triage.access")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Classify(pb.ClassifyRequest(text="hi", report_id="i" * 1_000_000), timeout=10)
    finally:
        server.stop(grace=0)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    lines = [r.getMessage() for r in caplog.records if r.name == "triage.access"]
    assert len(lines) == 1 and len(lines[0]) < 200 and "iiii" not in lines[0]


def test_metrics_beyond_loopback_need_insecure(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    public = {"model_path": models_dir / CURRENT, "port": 0, "metrics_port": 0}
    with pytest.raises(TriageError, match=r"refusing metrics on 0\.0\.0\.0"):
        TriageServer(ServeConfig(**public, metrics_host="0.0.0.0"))  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING)
    server = start_server(models_dir, metrics_port=0, metrics_host="0.0.0.0", insecure=True)
    try:
        assert any("PLAINTEXT metrics on 0.0.0.0" in r.getMessage() for r in caplog.records)
    finally:
        server.stop(grace=0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_survives_sighup_while_loading_and_prints_its_metrics_port(
    models_dir: Path,
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    command = [sys.executable, "-m", "triage", "serve", "--model", str(models_dir / CURRENT)]
    command += ["--port", str(port), "--metrics-port", "0", "--workers", "1", "--watch", "0"]
    command += ["--no-record"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # listening comes before the model (and a model process) is loaded
            assert process.poll() is None and time.monotonic() < deadline, "never listened"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.01)
        process.send_signal(signal.SIGHUP)
        assert process.stdout is not None
        serving = process.stdout.readline()
        assert serving == f"triage: serving on 127.0.0.1:{port}\n", process.returncode
        metrics = process.stdout.readline()
        match = re.fullmatch(r"triage: metrics on 127\.0\.0\.1:(\d+)\n", metrics)
        assert match, metrics
        url = f"http://127.0.0.1:{match[1]}/metrics"
        assert "triage_rpc_calls_total" in urllib.request.urlopen(url, timeout=10).read().decode()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr
    assert "SIGHUP while loading" in stderr
