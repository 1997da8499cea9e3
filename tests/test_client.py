"""The Python client against a real server on port 0: answers, errors, tokens, TLS, deadlines."""

from __future__ import annotations

import os
import queue
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from triage.client import Classification, TriageClient
from triage.core.artifacts import CURRENT, MODEL_FILE, promote, write_artifact
from triage.core.model import TriageModel
from triage.rpc.app import TriageServer
from triage.rpc.security import TlsConfig
from triage.runtime.service import Limits
from triage.training.train import TrainResult

from .conftest import TINY_CONFIG, start_server
from .pki import Pki, make_pki

TOKEN = "client-test-token-5d1e9c"
# A training report the tiny model is sure of, and one it is not: together they exercise both
# values of needs_review.
SURE = (
    "A man was filming the security barriers and the staff entrance of the stadium for twenty "
    "minutes and ran off when a steward approached him."
)
UNSURE = "hi"
FRAUD = "A fake bank caller talked my mother into moving her savings to a safe account"

# Every public call of the client, reduced to "make one call and wait for it".
CALLS: dict[str, Callable[[TriageClient], object]] = {
    "classify": lambda c: c.classify(FRAUD),
    "classify_batch": lambda c: c.classify_batch([FRAUD]),
    "classify_stream": lambda c: list(c.classify_stream([("s0", FRAUD)])),
    "model_info": lambda c: c.model_info(),
    "reload_model": lambda c: c.reload_model(),
}
UNARY = ("classify", "classify_batch", "model_info", "reload_model")


@pytest.fixture
def server(models_dir: Path) -> Iterator[TriageServer]:
    running = start_server(
        models_dir, workers=0, limits=Limits(max_text_chars=2_000, max_batch_size=3)
    )
    yield running
    running.stop(grace=0)


@pytest.fixture
def client(server: TriageServer) -> Iterator[TriageClient]:
    with TriageClient(f"127.0.0.1:{server.port}") as connected:
        yield connected


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _assert_same_answer(got: Classification, text: str, model: TriageModel, top_k: int) -> None:
    expected = model.predict([text], top_k=top_k)[0]
    assert got.error is None
    assert (got.label, got.needs_review, got.model_version) == (
        expected.label,
        expected.needs_review,
        expected.model_version,
    )
    assert got.confidence == pytest.approx(expected.confidence)
    assert list(got.scores) == [label for label, _ in expected.scores]  # highest first
    assert list(got.scores.values()) == pytest.approx([p for _, p in expected.scores])
    assert [term for term, _ in got.explanation] == [term for term, _ in expected.top_terms]
    assert [w for _, w in got.explanation] == pytest.approx([w for _, w in expected.top_terms])


def test_classify_answers_as_the_model_does(client: TriageClient, tiny_model: TriageModel) -> None:
    answer = client.classify(SURE, report_id="call-17", explanation_terms=3)
    assert answer.report_id == "call-17" and answer.model_version == "v1"
    _assert_same_answer(answer, SURE, tiny_model, top_k=3)
    assert set(answer.scores) == set(tiny_model.labels)
    assert sum(answer.scores.values()) == pytest.approx(1.0)
    assert answer.confidence == max(answer.scores.values())
    assert 1 <= len(answer.explanation) <= 3
    assert all(isinstance(t, str) and w > 0 for t, w in answer.explanation)


def test_needs_review_follows_the_model_threshold(
    client: TriageClient, tiny_model: TriageModel
) -> None:
    threshold = client.model_info().review_threshold
    sure, unsure = client.classify(SURE), client.classify(UNSURE)
    assert (sure.needs_review, unsure.needs_review) == (False, True)
    assert sure.confidence >= threshold > unsure.confidence
    _assert_same_answer(unsure, UNSURE, tiny_model, top_k=5)


def test_explanation_terms_zero_asks_for_none(client: TriageClient) -> None:
    # 0 must reach the server as a set value: unset means the server's default of 5.
    assert client.classify(SURE, explanation_terms=0).explanation == []
    assert 1 <= len(client.classify(SURE).explanation) <= 5


@pytest.mark.parametrize(
    ("text", "terms", "message"),
    [
        ("", 5, "text is empty"),
        (" \n\t ", 5, "only whitespace"),
        ("y" * 2_001, 5, "2,001 characters, over the limit of 2,000"),
        ("ok", 51, "max_explanation_terms must be between 0 and 50"),
    ],
)
def test_a_refused_report_raises_the_server_status(
    client: TriageClient, text: str, terms: int, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        client.classify(text, explanation_terms=terms)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def test_batch_keeps_order_and_isolates_a_bad_report(
    client: TriageClient, tiny_model: TriageModel
) -> None:
    texts = [FRAUD, "", SURE]
    results = client.classify_batch(texts, report_ids=["a", "b", "c"], explanation_terms=1)
    assert [r.report_id for r in results] == ["a", "b", "c"]
    _assert_same_answer(results[0], FRAUD, tiny_model, top_k=1)
    _assert_same_answer(results[2], SURE, tiny_model, top_k=1)
    assert [len(results[0].explanation), len(results[2].explanation)] == [1, 1]
    refused = results[1]
    assert refused.error is not None and "empty" in refused.error
    assert (refused.label, refused.scores, refused.explanation, refused.model_version) == (
        "",
        {},
        [],
        "",
    )


def test_batch_ids_default_to_positions(client: TriageClient) -> None:
    results = client.classify_batch([SURE, " ", FRAUD])
    assert [r.report_id for r in results] == ["0", "1", "2"]
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].error is not None and "only whitespace" in results[1].error


def test_batch_ids_must_match_the_texts(client: TriageClient) -> None:
    with pytest.raises(ValueError, match="shorter"):
        client.classify_batch([SURE, FRAUD], report_ids=["only-one"])


def test_an_oversized_batch_fails_the_whole_call(client: TriageClient) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        client.classify_batch([FRAUD] * 4)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch has 4 reports, over the limit of 3" in caught.value.details()


def test_stream_answers_each_report_while_the_caller_is_still_sending(
    client: TriageClient, tiny_model: TriageModel
) -> None:
    outbox: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def reports() -> Iterator[tuple[str, str]]:
        # A client that waited for the whole input before answering would time out here and
        # the call would be cancelled, failing the test instead of hanging it.
        while (report := outbox.get(timeout=10)) is not None:
            yield report

    answers = client.classify_stream(reports())
    outbox.put(("s0", FRAUD))
    first = next(answers)
    assert first.report_id == "s0"
    _assert_same_answer(first, FRAUD, tiny_model, top_k=5)
    outbox.put(("s1", ""))
    second = next(answers)
    assert second.report_id == "s1" and second.error is not None and "empty" in second.error
    outbox.put(("s2", SURE))
    third = next(answers)
    assert third.report_id == "s2"
    _assert_same_answer(third, SURE, tiny_model, top_k=5)
    outbox.put(None)
    assert list(answers) == []


def test_model_info_describes_the_serving_model(
    client: TriageClient, tiny_model: TriageModel
) -> None:
    info = client.model_info()
    assert info.version == "v1" and tuple(info.labels) == tiny_model.labels
    assert info.candidate == TINY_CONFIG.candidate
    assert info.review_threshold == pytest.approx(tiny_model.review_threshold)
    assert (info.limits.max_text_chars, info.limits.max_batch_size) == (2_000, 3)


def test_reload_switches_to_a_newly_promoted_model(
    models_dir: Path, client: TriageClient, tiny_result: TrainResult
) -> None:
    unchanged = client.reload_model()
    assert (unchanged.previous_version, unchanged.model_version, unchanged.changed) == (
        "v1",
        "v1",
        False,
    )
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    promote(models_dir, "v2")
    switched = client.reload_model()
    assert (switched.previous_version, switched.model_version, switched.changed) == (
        "v1",
        "v2",
        True,
    )
    assert client.classify(FRAUD).model_version == "v2"
    assert client.model_info().version == "v2"


def test_reload_of_a_tampered_model_raises_and_the_old_one_keeps_serving(
    models_dir: Path, client: TriageClient, tiny_result: TrainResult
) -> None:
    write_artifact(models_dir, "v3", tiny_result.pipeline, tiny_result.card)
    (models_dir / "v3" / MODEL_FILE).write_bytes(b"not the pipeline the card describes")
    # `promote` verifies first and would refuse, so switch the link by hand as an attacker would.
    (models_dir / ".switch").symlink_to("v3")
    os.replace(models_dir / ".switch", models_dir / CURRENT)
    with pytest.raises(grpc.RpcError) as caught:
        client.reload_model()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not match the model card" in caught.value.details()
    assert client.classify(FRAUD).model_version == "v1"


def test_every_call_carries_the_token_metadata(models_dir: Path) -> None:
    admin_token = "client-test-admin-token-0b7e"
    server = start_server(models_dir, workers=0, tokens=(TOKEN,), admin_tokens=(admin_token,))
    target = f"127.0.0.1:{server.port}"
    try:
        for metadata in ((), [("authorization", "Bearer not-the-token")]):
            with TriageClient(target, metadata=metadata) as refused:
                for name, call in CALLS.items():
                    with pytest.raises(grpc.RpcError) as caught:
                        call(refused)
                    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
                    assert "bearer token" in caught.value.details(), name
        with TriageClient(target, metadata=[("authorization", f"Bearer {TOKEN}")]) as admitted:
            for name, call in CALLS.items():
                if name != "reload_model":  # an admin call
                    call(admitted)
            assert admitted.classify(FRAUD, report_id="t1").report_id == "t1"
            assert [c.report_id for c in admitted.classify_stream([("s9", FRAUD)])] == ["s9"]
        with TriageClient(target, metadata=[("authorization", f"Bearer {admin_token}")]) as admin:
            for call in CALLS.values():
                call(admin)
    finally:
        server.stop(grace=0)


def test_tls_credentials_and_token_together(models_dir: Path, pki: Pki) -> None:
    server = start_server(
        models_dir, workers=0, tls=TlsConfig(pki.server_cert, pki.server_key), tokens=(TOKEN,)
    )
    target = f"localhost:{server.port}"
    try:
        with TriageClient(
            target,
            credentials=grpc.ssl_channel_credentials(pki.ca),
            metadata=[("authorization", f"Bearer {TOKEN}")],
        ) as secure:
            assert secure.classify(FRAUD).model_version == "v1"
            assert secure.model_info().version == "v1"
        with TriageClient(target, metadata=[("authorization", f"Bearer {TOKEN}")]) as plain:
            with pytest.raises(grpc.RpcError) as caught:
                plain.classify(FRAUD)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # no plaintext on TLS
    finally:
        server.stop(grace=0)


def test_the_timeout_bounds_every_unary_call() -> None:
    # A peer that accepts the connection and never answers: only the deadline ends the call.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        with TriageClient(target, timeout=0.1) as hanging:
            for name in UNARY:
                with pytest.raises(grpc.RpcError) as caught:
                    CALLS[name](hanging)
                assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, name


def test_a_closed_client_refuses_calls(server: TriageServer) -> None:
    with TriageClient(f"127.0.0.1:{server.port}") as client:
        assert client.classify(FRAUD).label
    with pytest.raises(ValueError, match="closed channel"):
        client.classify(FRAUD)
