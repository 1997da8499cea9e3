"""Model processes under supervision: hung, killed mid-call, unrestartable; health follows."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from triage.core.artifacts import CURRENT, write_artifact
from triage.rpc.app import TriageServer
from triage.runtime.model_processes import ModelWorkerPool
from triage.runtime.supervision import Supervision
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RESTARTS = "triage_model_process_restarts_total"


def _until(condition: Callable[[], bool], seconds: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.02)


def _pool(server: TriageServer) -> ModelWorkerPool:
    pool = server.engine
    assert isinstance(pool, ModelWorkerPool)
    return pool


def _batch(n: int) -> pb.ClassifyBatchRequest:
    text = "my bank card was cloned and used abroad"
    return pb.ClassifyBatchRequest(reports=[pb.ClassifyRequest(text=text) for _ in range(n)])


def _health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service="triage.v1.TriageService")
    status: int = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status
    return status


@contextlib.contextmanager
def _resumed_at_exit(pids: list[int]) -> Iterator[None]:
    # A stopped process that the code under test failed to deal with must not outlive the test.
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def watched_server(models_dir: Path) -> Iterator[TriageServer]:
    server = start_server(
        models_dir, workers=2, supervision=Supervision(batch_seconds=1.0), quiet_lane=False
    )
    yield server
    server.stop(grace=0)


def test_a_hung_model_process_is_killed_and_replaced_while_calls_go_on(
    watched_server: TriageServer, caplog: pytest.LogCaptureFixture
) -> None:
    pool = _pool(watched_server)
    victim = pool.pids()[0]
    assert victim is not None
    codes: list[grpc.StatusCode] = []
    slowest = 0.0
    target = f"127.0.0.1:{watched_server.port}"
    with _resumed_at_exit([victim]), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.TriageServiceStub(ch)
        os.kill(victim, signal.SIGSTOP)  # hung: alive, holding its pipe, answering nothing
        stop = time.monotonic() + 2.0

        def caller(n: int) -> None:
            nonlocal slowest
            while time.monotonic() < stop:
                started = time.monotonic()
                try:
                    stub.Classify(pb.ClassifyRequest(text=f"parcel scam {n}"), timeout=5)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as err:
                    codes.append(err.code())
                slowest = max(slowest, time.monotonic() - started)

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _until(lambda: victim not in pool.pids() and None not in pool.pids(), what="a restart")
        assert _health(ch) == SERVING
        assert len(stub.ClassifyBatch(_batch(3), timeout=10).results) == 3
    # The calls caught in the hung process failed fast with UNAVAILABLE (within its bound,
    # 1 s here), and everything else went on: no call waited out its deadline.
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, set(codes)
    assert codes.count(grpc.StatusCode.OK) >= 20
    assert slowest < 3.0
    assert watched_server.metrics.registry.get_sample_value(RESTARTS) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"(pid {victim}) did not answer a batch" in m for m in messages), messages
    assert any("model process 0 restarted" in m for m in messages), messages


def test_a_model_process_that_dies_mid_call_is_logged_restarted_and_counted(
    watched_server: TriageServer, caplog: pytest.LogCaptureFixture
) -> None:
    pool = _pool(watched_server)
    pids = [pid for pid in pool.pids() if pid is not None]
    with _resumed_at_exit(pids), grpc.insecure_channel(f"127.0.0.1:{watched_server.port}") as ch:
        stub = pb_grpc.TriageServiceStub(ch)
        for pid in pids:  # whichever lane takes the batch holds it until it is killed
            os.kill(pid, signal.SIGSTOP)
        call = stub.ClassifyBatch.future(_batch(3), timeout=30)
        _until(lambda: any(pool.busy()), what="the batch reaching a model process")
        lane = pool.busy().index(True)
        os.kill(pids[lane], signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        with pytest.raises(grpc.RpcError) as caught:
            call.result()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "restarted" in (caught.value.details() or "")
        for _ in range(2):  # the batches after it are scored (round both lanes)
            assert len(stub.ClassifyBatch(_batch(2), timeout=10).results) == 2
        _until(lambda: None not in pool.pids() and pids[lane] not in pool.pids(), what="restart")
    assert watched_server.metrics.registry.get_sample_value(RESTARTS) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f"model process {lane} (pid {pids[lane]}) died while scoring a batch of 3" in m
        for m in messages
    ), messages
    assert any(f"model process {lane} restarted" in m for m in messages), messages


def test_a_moved_model_directory_does_not_stop_a_restart(
    models_dir: Path, watched_server: TriageServer
) -> None:
    pool = _pool(watched_server)
    (models_dir / "v1").rename(models_dir / "archived-v1")  # `current` now leads nowhere
    victim = pool.pids()[0]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    _until(lambda: victim not in pool.pids() and None not in pool.pids(), what="a restart")
    with grpc.insecure_channel(f"127.0.0.1:{watched_server.port}") as ch:
        stub = pb_grpc.TriageServiceStub(ch)
        for _ in range(4):  # batches go round both lanes
            answer = stub.ClassifyBatch(_batch(2), timeout=10)
            assert answer.model_version == "v1" and len(answer.results) == 2
        assert _health(ch) == SERVING
    assert watched_server.metrics.registry.get_sample_value(RESTARTS) == 1


def test_no_restartable_lane_turns_health_not_serving_until_a_model_is_reloaded(
    models_dir: Path,
    watched_server: TriageServer,
    tiny_result: TrainResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = _pool(watched_server)
    shutil.rmtree(models_dir / "v1")  # deleted outright: nothing to restart from
    pids = [pid for pid in pool.pids() if pid is not None]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    with grpc.insecure_channel(f"127.0.0.1:{watched_server.port}") as ch:
        stub = pb_grpc.TriageServiceStub(ch)
        _until(lambda: _health(ch) == NOT_SERVING, what="health NOT_SERVING")
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            stub.ClassifyBatch(_batch(2), timeout=10)
        assert time.monotonic() - started < 2.0  # at once, not after a wait
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert str(models_dir) not in (caught.value.details() or "")
        assert "/" not in (caught.value.details() or "")
        # A good model promoted and reloaded brings every lane back.
        write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
        (models_dir / CURRENT).unlink()
        (models_dir / CURRENT).symlink_to("v2")
        result = stub.ReloadModel(pb.ReloadModelRequest(), timeout=60)
        assert result.model_version == "v2"
        _until(lambda: _health(ch) == SERVING, what="health SERVING again")
        assert stub.ClassifyBatch(_batch(2), timeout=10).model_version == "v2"
        assert None not in pool.pids()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("could not be restarted" in r.getMessage() for r in errors)
    assert any("NOT_SERVING" in r.getMessage() for r in errors)
