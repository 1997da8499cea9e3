"""The service at scale: micro-batching, model processes, restarts, reload, shedding."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from triage.core.artifacts import CURRENT, MODEL_FILE, write_artifact
from triage.core.model import TriageModel
from triage.core.scoring import Outcome, Report
from triage.rpc.app import TriageServer
from triage.runtime.microbatch import BatchingConfig, MicroBatcher
from triage.runtime.model_processes import ModelWorkerPool
from triage.training.train import TrainResult
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import start_server

WORDS = [
    "bank",
    "hacked",
    "parcel",
    "bomb",
    "burglary",
    "courier",
    "ransomware",
    "bag",
    "password",
    "knife",
    "crypto",
    "station",
    "email",
    "drugs",
    "extremist",
    "invoice",
]


def _texts(n: int) -> list[str]:
    # Distinct texts with distinct score vectors, so a mix-up between callers would show.
    return [
        f"report {i}: " + " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(1 + i % 5))
        for i in range(n)
    ]


@pytest.fixture
def pool_server(models_dir: Path) -> Iterator[TriageServer]:
    server = start_server(models_dir, workers=2)
    yield server
    server.stop(grace=0)


def _switch(models_dir: Path, version: str) -> None:
    (models_dir / ".switch").symlink_to(version)
    os.replace(models_dir / ".switch", models_dir / CURRENT)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("workers", [0, 2])
def test_each_concurrent_caller_gets_its_own_result(
    models_dir: Path, tiny_model: TriageModel, workers: int
) -> None:
    server = start_server(models_dir, workers=workers, batching=BatchingConfig(max_batch=16))
    texts = _texts(240)
    expected = tiny_model.predict(texts, top_k=3)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:  # one channel
            stub = pb_grpc.TriageServiceStub(channel)

            def call(i: int) -> pb.ClassifyResponse:
                return stub.Classify(
                    pb.ClassifyRequest(text=texts[i], report_id=f"c{i}", max_explanation_terms=3),
                    timeout=30,
                )

            with ThreadPoolExecutor(48) as callers:
                answers = list(callers.map(call, range(len(texts))))
        batches = server.metrics.registry.get_sample_value("triage_batch_size_count")
        reports = server.metrics.registry.get_sample_value("triage_batch_size_sum")
    finally:
        server.stop(grace=0)
    for i, (answer, want) in enumerate(zip(answers, expected, strict=True)):
        assert answer.report_id == f"c{i}"
        assert answer.label == want.label
        assert answer.confidence == pytest.approx(want.confidence, abs=1e-9)
        assert [(e.term, e.weight) for e in answer.explanation] == [
            (t, pytest.approx(w)) for t, w in want.top_terms
        ]
    assert reports == len(texts)
    assert batches is not None and batches < len(texts)  # calls really were scored together


def test_one_channel_keeps_several_model_processes_busy(pool_server: TriageServer) -> None:
    pool = pool_server.engine
    assert isinstance(pool, ModelWorkerPool)
    pids = [pid for pid in pool.pids() if pid is not None]
    assert len(pids) == 2
    before = {pid: _cpu_seconds(pid) for pid in pids}
    text = "a man filmed the entrance cameras of the depot and asked the guard about shifts " * 8
    stop = time.monotonic() + 3.0
    with grpc.insecure_channel(f"127.0.0.1:{pool_server.port}") as channel:
        stub = pb_grpc.TriageServiceStub(channel)

        def caller() -> None:
            while time.monotonic() < stop:
                stub.Classify(pb.ClassifyRequest(text=text), timeout=30)

        threads = [threading.Thread(target=caller) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    used = {pid: _cpu_seconds(pid) - before[pid] for pid in pids}
    assert all(seconds > 0.3 for seconds in used.values()), used


def test_lone_calls_take_the_quiet_lane_and_concurrent_ones_the_processes(
    models_dir: Path, tiny_model: TriageModel
) -> None:
    pool = ModelWorkerPool(models_dir / CURRENT, 2, quiet_lane=True)
    pool.reload()
    lanes: list[int] = []

    def scorer(lane: int, reports: Sequence[Report]) -> tuple[str, list[Outcome]]:
        lanes.append(lane)
        return pool.score(lane, reports)

    batcher = MicroBatcher(scorer, pool.lanes, quiet_lane=pool.quiet_lane)
    texts = _texts(64)
    expected = tiny_model.predict(texts)
    try:
        alone = [batcher.submit(Report(t, str(i)))[1] for i, t in enumerate(texts[:5])]
        assert lanes == [2] * 5  # one at a time: always in this process, no round trip
        lanes.clear()
        with ThreadPoolExecutor(16) as callers:
            together = list(
                callers.map(lambda i: batcher.submit(Report(texts[i], str(i)))[1], range(64))
            )
    finally:
        batcher.close()
        pool.close()
    assert {0, 1} <= set(lanes)  # concurrent calls spread over the model processes
    for i, outcome in [*enumerate(alone), *enumerate(together)]:
        assert outcome.report_id == str(i) and outcome.prediction is not None
        assert dict(outcome.prediction.scores) == pytest.approx(dict(expected[i].scores), abs=1e-9)


def test_a_killed_model_process_is_replaced(pool_server: TriageServer) -> None:
    pool = pool_server.engine
    assert isinstance(pool, ModelWorkerPool)
    victim = pool.pids()[0]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.3)
    failures = []
    with grpc.insecure_channel(f"127.0.0.1:{pool_server.port}") as channel:
        stub = pb_grpc.TriageServiceStub(channel)
        for i in range(40):
            try:
                stub.Classify(pb.ClassifyRequest(text=f"my bank card was cloned {i}"), timeout=60)
            except grpc.RpcError as err:
                failures.append(err.code())
        batch = stub.ClassifyBatch(
            pb.ClassifyBatchRequest(
                reports=[pb.ClassifyRequest(text="burglary") for _ in range(4)]
            ),
            timeout=60,
        )
    assert failures == []  # it died idle: nobody's call was lost
    assert len(batch.results) == 4
    # The other process answered meanwhile; the replacement counts once it is loaded and warm
    # (which includes building the language detector: a second or more on a busy machine).
    registry = pool_server.metrics.registry
    waited = time.monotonic() + 60
    while registry.get_sample_value("triage_model_process_restarts_total") != 1:
        assert time.monotonic() < waited, "the killed model process was never replaced"
        time.sleep(0.05)
    assert victim not in pool.pids() and None not in pool.pids()


def test_reload_reaches_every_model_process(
    models_dir: Path, pool_server: TriageServer, tiny_result: TrainResult
) -> None:
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    _switch(models_dir, "v2")
    with grpc.insecure_channel(f"127.0.0.1:{pool_server.port}") as channel:
        stub = pb_grpc.TriageServiceStub(channel)
        result = stub.ReloadModel(pb.ReloadModelRequest(), timeout=120)
        assert (result.previous_version, result.model_version) == ("v1", "v2")
        versions = {
            stub.ClassifyBatch(
                pb.ClassifyBatchRequest(reports=[pb.ClassifyRequest(text="hacked")]), timeout=30
            ).model_version
            for _ in range(6)
        }
        assert versions == {"v2"}  # batches rotate over both processes
        # A lone unary call is scored by the server process's own copy: switched as well.
        assert stub.Classify(pb.ClassifyRequest(text="hacked"), timeout=30).model_version == "v2"
        write_artifact(models_dir, "v3", tiny_result.pipeline, tiny_result.card)
        (models_dir / "v3" / MODEL_FILE).write_bytes(b"tampered")
        _switch(models_dir, "v3")
        with pytest.raises(grpc.RpcError) as caught:
            stub.ReloadModel(pb.ReloadModelRequest(), timeout=120)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        versions = {
            stub.ClassifyBatch(
                pb.ClassifyBatchRequest(reports=[pb.ClassifyRequest(text="hacked")]), timeout=30
            ).model_version
            for _ in range(6)
        }
        assert versions == {"v2"}
        assert stub.Classify(pb.ClassifyRequest(text="hacked"), timeout=30).model_version == "v2"
    assert (
        pool_server.metrics.registry.get_sample_value(
            "triage_model_reloads_total", {"outcome": "failure"}
        )
        == 1
    )


def test_without_the_quiet_lane_lone_calls_go_to_a_model_process(models_dir: Path) -> None:
    server = start_server(models_dir, workers=2, quiet_lane=False)
    try:
        pool = server.engine
        assert isinstance(pool, ModelWorkerPool) and pool.quiet_lane is None
        pids = [pid for pid in pool.pids() if pid is not None]
        before = sum(_cpu_seconds(pid) for pid in pids)
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            text = "my bank card was cloned and used abroad " * 20
            for _ in range(40):
                assert stub.Classify(pb.ClassifyRequest(text=text), timeout=30).label
        assert sum(_cpu_seconds(pid) for pid in pids) - before > 0.02  # scored over there
    finally:
        server.stop(grace=0)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited, it only waits to be reaped


def test_shutdown_stops_every_model_process(models_dir: Path) -> None:
    server = start_server(models_dir, workers=2)
    pool = server.engine
    assert isinstance(pool, ModelWorkerPool)
    pids = [pid for pid in pool.pids() if pid is not None]
    assert len(pids) == 2 and all(_running(pid) for pid in pids)
    server.stop(grace=5)
    assert not any(_running(pid) for pid in pids)


def test_calls_over_the_in_flight_cap_are_shed_at_once(models_dir: Path) -> None:
    server = start_server(models_dir, max_in_flight=2, batching=BatchingConfig(max_batch=1))
    slow = "unattended suitcase by the ticket barrier, wires showing " * 60
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.TriageServiceStub(channel)
            calls = [
                stub.Classify.future(pb.ClassifyRequest(text=slow), timeout=60) for _ in range(30)
            ]
            codes = []
            for call in calls:
                try:
                    call.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as err:
                    codes.append(err.code())
    finally:
        server.stop(grace=0)
    assert codes.count(grpc.StatusCode.OK) >= 2
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 10
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
