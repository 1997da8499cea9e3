"""`triage serve` as a real process: signals, draining, exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from triage.core.artifacts import CURRENT, write_artifact
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc


@pytest.fixture
def serve_process(models_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "triage",
            "serve",
            "--port",
            "0",
            "--model",
            str(models_dir / CURRENT),
            "--drain",
            "1",
            "--grace",
            "20",
            "--watch",
            "0",
            "--max-batch",
            "5000",
            "--no-record",
            "--access-log",
            str(tmp_path / "access.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"serving on (\S+)", line)
    assert match, line + (tmp_path / "serve.log").read_text()
    yield process, match.group(1)
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stdout.close()
    log.close()


def test_sigterm_drains_calls_in_flight_and_exits_zero(
    serve_process: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, target = serve_process
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.TriageServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        text = "a man was seen photographing the reservoir fences and gates at night " * 40
        in_flight = stub.ClassifyBatch.future(
            pb.ClassifyBatchRequest(
                reports=[pb.ClassifyRequest(text=text, report_id=str(i)) for i in range(1_500)]
            ),
            timeout=60,
        )
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING  # during the drain window
        response = in_flight.result()
        assert len(response.results) == 1_500 and all(r.label for r in response.results)
    assert process.wait(timeout=30) == 0
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.TriageServiceStub(channel).Classify(pb.ClassifyRequest(text="hi"), timeout=2)
    assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    # The access log is written from its own thread, many lines per write: at a clean stop
    # every answered report has its line, once, and none holds the text.
    lines = (tmp_path / "access.jsonl").read_text().splitlines()
    batch = [json.loads(line) for line in lines if '"ClassifyBatch"' in line]
    assert sorted(int(e["report_id"]) for e in batch) == list(range(1_500))
    assert all(e["status"] == "OK" and e["label"] for e in batch)
    assert not any("reservoir" in line for line in lines)


def test_sighup_reloads_a_promoted_model(
    serve_process: tuple[subprocess.Popen[str], str], models_dir: Path, tiny_result: TrainResult
) -> None:
    process, target = serve_process
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    (models_dir / ".switch").symlink_to("v2")
    os.replace(models_dir / ".switch", models_dir / CURRENT)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.TriageServiceStub(channel)
        assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).version == "v1"  # watch off
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).version != "v2":
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_serve_without_a_model_exits_non_zero_with_a_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "triage", "serve", "--port", "0", "--no-record"),
            *("--model", str(tmp_path / "none")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "triage: error: no model card" in done.stderr and "Traceback" not in done.stderr
