"""Capacity admission over a real server: stream and unary slots, per-connection caps, health
checks that are never refused, and the byte budget of requests in flight."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from triage.core.errors import TriageError
from triage.runtime.service import Limits
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
CLASSIFY = "/triage.v1.TriageService/Classify"
# Channels in one process share a connection per target unless told otherwise.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def _connection(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=OWN_CONNECTION)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _check(channel: grpc.Channel, timeout: float = 2.0) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    status: int = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout).status
    return status


def _open_watch(channel: grpc.Channel) -> tuple[Iterator[object], grpc.RpcError | None]:
    """A Health/Watch stream, and the error that refused it (None: it is open)."""
    stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
    try:
        assert next(stream).status == SERVING  # an open Watch answers at once
    except grpc.RpcError as err:
        return stream, err
    return stream, None


def _hold_unary_call(channel: grpc.Channel) -> tuple[threading.Event, grpc.Future]:
    """A Classify call whose request never comes until the event is set, as a slow or hostile
    client would hold it (the unary method called as client-streaming: the same wire format)."""
    release = threading.Event()

    def no_request() -> Iterator[bytes]:
        release.wait(60)
        yield from ()

    call = channel.stream_unary(CLASSIFY)
    return release, call.future(no_request(), timeout=60)


def test_idle_streams_never_starve_unary_calls_or_health_checks(models_dir: Path) -> None:
    # The load: 300 idle streams, unauthenticated Health/Watch ones. Defaults: 64 stream
    # slots, 16 per connection, so 20 connections of 15 streams reach the overall limit.
    server = start_server(models_dir)
    target = f"127.0.0.1:{server.port}"
    try:
        with ExitStack() as stack:
            channels = [stack.enter_context(_connection(target)) for _ in range(20)]
            opened = refused = 0
            for channel in channels:
                for _ in range(15):
                    stream, error = _open_watch(channel)
                    stack.callback(stream.cancel)  # type: ignore[attr-defined]
                    if error is None:
                        opened += 1
                        continue
                    refused += 1
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "limit of 64 streams open" in error.details()
            assert (opened, refused) == (64, 236)
            with grpc.insecure_channel(target) as fresh:
                stub = pb_grpc.TriageServiceStub(fresh)
                for _ in range(5):
                    answer = stub.Classify(
                        pb.ClassifyRequest(text="my email was hacked"), timeout=2
                    )
                    assert answer.model_version == "v1"
                    assert _check(fresh) == SERVING
            assert _check(channels[0]) == SERVING  # the busy connections too
        refusals = server.metrics.registry.get_sample_value(
            "triage_capacity_refusals_total", {"limit": "streams"}
        )
        assert refusals == 236
    finally:
        server.stop(grace=0)


def test_one_connection_cannot_take_every_stream_slot(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = start_server(models_dir, max_streams_per_connection=4)
    target = f"127.0.0.1:{server.port}"
    try:
        with _connection(target) as greedy, _connection(target) as other:
            held = [_open_watch(greedy) for _ in range(6)]
            errors = [error for _, error in held if error is not None]
            assert len(errors) == 2
            assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in errors)
            assert "this connection has its limit of 4 streams open" in errors[0].details()
            # Logged once for the burst, not once per refusal.
            warned = [r.getMessage() for r in caplog.records if r.name == "triage.rpc.admission"]
            assert len(warned) == 1 and "this connection has its limit of 4" in warned[0]
            answers = pb_grpc.TriageServiceStub(other).ClassifyStream(
                iter([pb.ClassifyRequest(text="parcel left at the station", report_id="s1")]),
                timeout=10,
            )
            assert [a.report_id for a in answers] == ["s1"]
            for stream, _ in held:
                stream.cancel()  # type: ignore[attr-defined]
            # Closed streams give their slots back.
            _wait_for(lambda: server.slots.streams == 0, "the streams to close")
            stream, error = _open_watch(greedy)
            assert error is None
            stream.cancel()  # type: ignore[attr-defined]
    finally:
        server.stop(grace=0)


def test_calls_that_never_send_their_request_hold_only_unary_slots(models_dir: Path) -> None:
    # A unary call is admitted before its request is read, so a client that never sends the
    # body holds a counted unary slot, not a thread no limit counts. With every unary and every
    # stream slot taken, health checks still answer: the pool has threads beyond both.
    server = start_server(models_dir, max_in_flight=2, max_streams=4)
    target = f"127.0.0.1:{server.port}"
    held: list[tuple[threading.Event, grpc.Future]] = []
    try:
        with grpc.insecure_channel(target) as channel:
            held = [_hold_unary_call(channel) for _ in range(2)]
            stub = pb_grpc.TriageServiceStub(channel)

            def unary_in_flight() -> float:
                value = server.metrics.registry.get_sample_value(
                    "triage_calls_in_flight", {"kind": "unary"}
                )
                return value or 0.0

            # No probe before both are admitted: a probe in flight would take a slot itself and
            # could get one of the held calls refused.
            _wait_for(lambda: unary_in_flight() == 2, "the held calls to take both unary slots")
            assert not any(call.done() for _, call in held)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Classify(pb.ClassifyRequest(text="hi"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit of 2 calls at once" in refused.value.details()
            watches = [_open_watch(channel) for _ in range(5)]  # streams have slots of their own
            assert [error is None for _, error in watches] == [True] * 4 + [False]
            for _ in range(5):
                assert _check(channel) == SERVING  # health checks are never refused
            for stream, _ in watches:
                stream.cancel()  # type: ignore[attr-defined]
            for release, call in held:
                release.set()
                with pytest.raises(grpc.RpcError) as ended:
                    call.result()
                assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "without its request message" in ended.value.details()
            assert stub.Classify(pb.ClassifyRequest(text="hi"), timeout=5).label
    finally:
        for release, _ in held:
            release.set()
        server.stop(grace=0)


def _big_batch(seed: int, size: int) -> pb.ClassifyBatchRequest:
    # Words never seen before: no call is cheap (the features cache words they have seen).
    reports: list[pb.ClassifyRequest] = []
    while sum(r.ByteSize() for r in reports) < size:
        text = " ".join(f"w{seed}x{len(reports)}y{j}" for j in range(5_000))
        reports.append(pb.ClassifyRequest(text=text, report_id=f"{seed}-{len(reports)}"))
    return pb.ClassifyBatchRequest(reports=reports)


def test_requests_beyond_the_byte_budget_are_refused_while_small_calls_work(
    models_dir: Path,
) -> None:
    mib = 1024 * 1024
    big = [_big_batch(seed, int(1.9 * mib)) for seed in range(3)]
    size = max(b.ByteSize() for b in big)
    budget = 2 * size + 50_000  # room for two big batches; not for a third or a 98 KB report
    server = start_server(
        models_dir,
        limits=Limits(max_text_chars=100_000, max_message_bytes=2 * mib),
        max_request_bytes=budget,
    )
    target = f"127.0.0.1:{server.port}"
    try:
        with grpc.insecure_channel(target) as channel, futures.ThreadPoolExecutor(2) as pool:
            stub = pb_grpc.TriageServiceStub(channel)
            running = [pool.submit(stub.ClassifyBatch, big[i], timeout=60) for i in range(2)]
            _wait_for(lambda: server.budget.in_use > 2 * size - 100_000, "two big batches")
            with pytest.raises(grpc.RpcError) as refused:
                stub.ClassifyBatch(big[2], timeout=30)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"over the server's budget of {budget / mib:,.1f} MiB" in refused.value.details()
            # Small requests never wait on the budget, and a stream answers a refused message
            # with an error result and goes on.
            assert stub.Classify(pb.ClassifyRequest(text="hacked email"), timeout=10).label
            large = pb.ClassifyRequest(text="parcel " * 14_000, report_id="large")  # 98 KB
            small = pb.ClassifyRequest(text="hacked email", report_id="small")
            answers = list(stub.ClassifyStream(iter([large, small]), timeout=30))
            for running_call in running:
                assert len(running_call.result().results) == len(big[0].reports)
        assert answers[0].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert "budget" in answers[0].error.message and answers[0].report_id == ""
        assert answers[1].report_id == "small" and answers[1].label
        assert server.budget.in_use == 0  # every byte taken was given back
        refusals = server.metrics.registry.get_sample_value(
            "triage_capacity_refusals_total", {"limit": "request_bytes"}
        )
        assert refusals is not None and refusals >= 1
    finally:
        server.stop(grace=0)


def test_a_budget_smaller_than_the_largest_message_is_refused_at_start(models_dir: Path) -> None:
    with pytest.raises(TriageError, match="could never be handled"):
        start_server(models_dir, max_request_bytes=1024, limits=Limits(max_message_bytes=4096))
