"""Fuzzing the gRPC surface: any request gets OK or its documented status, and the server lives on.

A real server on port 0 gets structured messages (every field, every limit, any text) and raw
request bytes (invalid UTF-8 inside string fields, truncated and garbage messages). After every
example the server must still answer a health check and score a known report as before.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from triage.core.artifacts import CURRENT
from triage.core.model import DEFAULT_TOP_TERMS, Prediction, TriageModel
from triage.rpc.app import ServeConfig, TriageServer
from triage.runtime.service import MAX_TOP_TERMS, Limits
from triage.v1 import triage_pb2 as pb

# Small limits, so that every one of them is cheap to reach and to cross.
MAX_TEXT = 2_000
MAX_BATCH = 50
MAX_BYTES = 256 * 1024
MAX_REPORT_ID_CHARS = 256  # fixed by the contract (triage.proto), not configurable
LIMITS = Limits(max_text_chars=MAX_TEXT, max_batch_size=MAX_BATCH, max_message_bytes=MAX_BYTES)

T = TypeVar("T")

SERVICE = "triage.v1.TriageService"
CALL_TIMEOUT = 10.0  # every fuzzed call; none should come near it
ALIVE_TIMEOUT = 5.0  # the health check and the known report after each example
STOP_TIMEOUT = 15.0  # stop(grace=0) takes well under a second
KNOWN_TEXT = "Someone logged into my email account and changed the password"
SERVING = health_pb2.HealthCheckResponse.SERVING
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

# Bounded for CI: a few seconds per test, the same examples on every run.
FUZZ = settings(max_examples=75, deadline=None, derandomize=True, database=None)
FUZZ_MODEL_PROCESSES = settings(FUZZ, max_examples=30)


# ---------------------------------------------------------------------------------------------
# The servers under test: one scoring in process, one with a model process.


@dataclass(frozen=True)
class Live:
    """A channel to a running server, and how it answered the known report at the start."""

    channel: grpc.Channel
    known_label: str

    def call(self, method: str, payload: bytes) -> bytes:
        call = self.channel.unary_unary(f"/{method}", _identity, _identity)
        answer: bytes = call(payload, timeout=CALL_TIMEOUT)
        return answer

    def stream(self, payloads: Sequence[bytes]) -> list[bytes]:
        call = self.channel.stream_stream(f"/{SERVICE}/ClassifyStream", _identity, _identity)
        return list(call(iter(payloads), timeout=CALL_TIMEOUT))


def _identity(payload: bytes) -> bytes:
    return payload  # raw bytes on the wire, exactly as built


WORKERS = {"in_process": 0, "model_processes": 1}  # model processes; 0: score in process


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _models_template: Path,
) -> Iterator[Live]:
    kind = getattr(request, "param", "in_process")
    models = tmp_path_factory.mktemp(f"fuzz-{kind}") / "models"
    shutil.copytree(_models_template, models, symlinks=True)
    config = ServeConfig(
        model_path=models / CURRENT, port=0, limits=LIMITS, watch_seconds=0, workers=WORKERS[kind]
    )
    server = TriageServer(config).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            known = _classify(channel, KNOWN_TEXT)
            yield Live(channel, known.label)
    finally:
        _stop(server)


def _stop(server: TriageServer) -> None:
    """Stop the server, failing (not hanging) if whatever was fuzzed left a call it cannot end."""
    stopping = threading.Thread(target=server.stop, kwargs={"grace": 0}, daemon=True)
    stopping.start()
    stopping.join(STOP_TIMEOUT)
    assert not stopping.is_alive(), f"the server did not stop within {STOP_TIMEOUT:g} s"


MODEL_PROCESSES = pytest.mark.parametrize("live", ["model_processes"], indirect=True)


def _classify(channel: grpc.Channel, text: str) -> pb.ClassifyResponse:
    call = channel.unary_unary(
        f"/{SERVICE}/Classify", pb.ClassifyRequest.SerializeToString, pb.ClassifyResponse.FromString
    )
    response: pb.ClassifyResponse = call(pb.ClassifyRequest(text=text), timeout=ALIVE_TIMEOUT)
    return response


def _assert_still_serving(live: Live) -> None:
    """Health says SERVING and the known report gets the label it got at the start."""
    check = health_pb2_grpc.HealthStub(live.channel).Check
    for service in ("", SERVICE):
        status = check(health_pb2.HealthCheckRequest(service=service), timeout=ALIVE_TIMEOUT)
        assert status.status == SERVING, service
    known = _classify(live.channel, KNOWN_TEXT)
    assert (known.label, known.model_version) == (live.known_label, "v1")


# ---------------------------------------------------------------------------------------------
# What the server must make of a request, from its bytes alone.


def _lenient_classes() -> tuple[type[Message], type[Message]]:
    """ClassifyRequest and ClassifyBatchRequest with their strings as bytes: they read what is
    a message but not valid UTF-8. proto2, so that an explicit max_explanation_terms=0 survives
    a round trip."""
    file = descriptor_pb2.FileDescriptorProto(
        name="fuzz/lenient.proto", package="fuzz", syntax="proto2"
    )
    field = descriptor_pb2.FieldDescriptorProto
    report = file.message_type.add(name="LenientReport")
    for name, number, kind in (
        ("text", 1, field.TYPE_BYTES),
        ("report_id", 2, field.TYPE_BYTES),
        ("max_explanation_terms", 3, field.TYPE_INT32),
    ):
        report.field.add(name=name, number=number, type=kind, label=field.LABEL_OPTIONAL)
    batch = file.message_type.add(name="LenientBatch")
    batch.field.add(
        name="reports",
        number=1,
        type=field.TYPE_MESSAGE,
        type_name=".fuzz.LenientReport",
        label=field.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    report_class: type[Message] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("fuzz.LenientReport")
    )
    batch_class: type[Message] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("fuzz.LenientBatch")
    )
    return report_class, batch_class


LenientReport, LenientBatch = _lenient_classes()


@dataclass(frozen=True)
class Reading:
    """One report's bytes as the server must read them: its text and id when they are UTF-8
    (None when not, or when the bytes are no message at all) and its explanation size.

    ``either`` is set when only a value that a later copy of the same field replaced was not
    UTF-8: protobuf keeps the last value, so refusing the report and scoring it are both right.
    """

    text: str | None
    report_id: str | None
    top_terms: int = DEFAULT_TOP_TERMS
    either: bool = False

    @property
    def must_refuse(self) -> bool:
        """Whether the documented limits refuse it: unreadable, blank or too long text, an id
        that is too long, an explanation size out of range."""
        text, report_id = self.text, self.report_id
        if text is None or report_id is None or len(report_id) > MAX_REPORT_ID_CHARS:
            return True
        return not text.strip() or len(text) > MAX_TEXT or not 0 <= self.top_terms <= MAX_TOP_TERMS

    @property
    def echoed_id(self) -> str:
        """The id the answer carries: a refused id is never echoed."""
        if self.report_id is None or len(self.report_id) > MAX_REPORT_ID_CHARS:
            return ""
        return self.report_id


def read_report(payload: bytes) -> Reading:
    try:
        lenient = LenientReport.FromString(payload)
    except DecodeError:
        return Reading(None, None)  # not a message at all
    top_terms = DEFAULT_TOP_TERMS
    if lenient.HasField("max_explanation_terms"):
        top_terms = lenient.max_explanation_terms
    try:
        pb.ClassifyRequest.FromString(payload)
        either = False
    except DecodeError:
        either = True  # a field that is not UTF-8, now or before a later copy replaced it
    text, report_id = _utf8(lenient.text), _utf8(lenient.report_id)
    either = either and text is not None and report_id is not None
    return Reading(text, report_id, top_terms, either)


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _assert_answers(response: pb.ClassifyResponse, reading: Reading, model: TriageModel) -> None:
    """``response`` is the documented answer to ``reading`` in a batch or stream: the model's
    prediction when it must be scored, an INVALID_ARGUMENT error when it must be refused."""
    if response.HasField("error"):
        event("a report refused")
        assert reading.must_refuse or reading.either, response.error.message
        assert response.error.code == INVALID_ARGUMENT.value[0], response.error
        assert response.error.message and "Traceback" not in response.error.message
        assert not response.label and not response.scores
        assert response.report_id == reading.echoed_id
        return
    assert not reading.must_refuse, f"scored a report the limits refuse: {response}"
    event("a report scored")
    _assert_scored(response, reading, model)


def _assert_scored(response: pb.ClassifyResponse, reading: Reading, model: TriageModel) -> None:
    assert reading.text is not None
    expected = _predict(model, reading.text, reading.top_terms)
    assert response.report_id == reading.echoed_id
    assert (response.label, response.model_version) == (expected.label, "v1")
    assert response.needs_review == expected.needs_review
    assert response.confidence == pytest.approx(expected.confidence)
    assert [s.label for s in response.scores] == [label for label, _ in expected.scores]
    assert [s.probability for s in response.scores] == pytest.approx(
        [p for _, p in expected.scores]
    )
    assert [t.term for t in response.explanation] == [t for t, _ in expected.top_terms]


@functools.lru_cache(maxsize=64)  # a batch often repeats one report up to its limit
def _predict(model: TriageModel, text: str, top_terms: int) -> Prediction:
    return model.predict([text], top_k=top_terms)[0]


def _outcome(call: Callable[[], T]) -> tuple[T | None, grpc.RpcError | None]:
    """Make the call: its answer, or the error it failed with. Never INTERNAL nor UNKNOWN."""
    try:
        answer = call()
    except grpc.RpcError as err:
        error = err
    else:
        event("OK")
        return answer, None
    # Asserted outside the except block: the failure must not depend on where gRPC raised.
    assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
        f"{error.code()}: {error.details()}"
    )
    assert "Traceback" not in (error.details() or "")
    event(error.code().name)  # how often each status came up: --hypothesis-show-statistics
    return None, error


def _assert_classify(live: Live, payload: bytes, model: TriageModel) -> None:
    """Unary Classify: RESOURCE_EXHAUSTED over the size limit, INVALID_ARGUMENT for a report the
    limits refuse, else the model's prediction."""
    answer, error = _outcome(lambda: live.call(f"{SERVICE}/Classify", payload))
    if len(payload) > MAX_BYTES:
        assert error is not None and error.code() == RESOURCE_EXHAUSTED
        return
    reading = read_report(payload)
    if error is not None:
        assert error.code() == INVALID_ARGUMENT, error.details()
        assert reading.must_refuse or reading.either, error.details()
        return
    assert answer is not None and not reading.must_refuse, "scored a report the limits refuse"
    _assert_scored(pb.ClassifyResponse.FromString(answer), reading, model)


def _assert_batch(live: Live, payload: bytes, reports: Sequence[bytes], model: TriageModel) -> None:
    """ClassifyBatch of ``reports`` (the bytes of each, in order) encoded as ``payload``:
    RESOURCE_EXHAUSTED over the size limit, INVALID_ARGUMENT over the batch limit, else one
    result per report, each the answer to that report alone."""
    answer, error = _outcome(lambda: live.call(f"{SERVICE}/ClassifyBatch", payload))
    if len(payload) > MAX_BYTES:
        assert error is not None and error.code() == RESOURCE_EXHAUSTED
        return
    if len(reports) > MAX_BATCH:
        assert error is not None and error.code() == INVALID_ARGUMENT
        assert f"over the limit of {MAX_BATCH}" in error.details()
        return
    assert answer is not None, f"{error.code()}: {error.details()}" if error else ""
    response = pb.ClassifyBatchResponse.FromString(answer)
    assert len(response.results) == len(reports)
    for result, report in zip(response.results, reports, strict=True):
        _assert_answers(result, read_report(report), model)


# ---------------------------------------------------------------------------------------------
# Structured requests.

# Every character protobuf can encode: all of Unicode but lone surrogates.
ANY_CHAR = st.characters(codec="utf-8")
EDGE_TEXTS = (
    "",
    " ",
    "\t\n\r\x0b\x0c",
    "\x00",
    "\x00" * 64,
    "\x1c\x1d\x1e\x1f\x85",  # separators Python counts as whitespace
    "\u200b\u200c\u200d\u2060\ufeff",  # zero-width, not whitespace
    "\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000",
    "\u202e\u2066gnirts desrever\u2069",
    "\x7f\x80\x9f\x01\x1b[31m",
    "e\u0301" * 300,
    "\U0001f469\u200d\U0001f4bb" * 40,
    "\U0010ffff\ufffd\ufffe",
    "炸弹威胁：明天中午在火车站放置炸弹",
    "قنبلة في المحطة غدا",
    "Бомба на вокзале завтра",
    "share" + ",x" * 40 + " a",  # the line that once took minutes to normalise
    "<script>alert(1)</script>",
    KNOWN_TEXT,
)


class Long(str):
    """A long string, shown in a failing example as how to make it, not as its characters."""

    unit: str

    def __new__(cls, unit: str, length: int) -> Long:
        made = super().__new__(cls, (unit * (length // len(unit) + 1))[:length])
        made.unit = unit
        return made

    def __repr__(self) -> str:
        return f"Long({self.unit!r}, {len(self)})"


LONG_UNITS = st.sampled_from(["a", "é", "中", "😀", " ", "\u200b", "card cloned "])
# Around the character limit and past it: at most 8 kB, so that a batch can repeat them.
LONG_TEXTS = st.builds(Long, LONG_UNITS, st.sampled_from([MAX_TEXT - 1, MAX_TEXT, MAX_TEXT + 1]))
TEXTS = st.one_of(
    st.text(ANY_CHAR, max_size=300),
    st.sampled_from(EDGE_TEXTS),
    st.tuples(
        st.text(ANY_CHAR, max_size=40), st.sampled_from(EDGE_TEXTS), st.text(max_size=40)
    ).map("".join),
    LONG_TEXTS,
    st.builds(Long, LONG_UNITS, st.just(MAX_BYTES + 1)),  # past the message size limit
)
SHORT_IDS = st.text(ANY_CHAR, max_size=30)
# Around the id limit, and ids of edge characters (some of them too long).
REPORT_IDS = st.one_of(
    SHORT_IDS,
    st.sampled_from(EDGE_TEXTS[:12]),
    st.builds(
        Long,
        st.sampled_from(["r", "中", "😀", "\x00"]),
        st.sampled_from([MAX_REPORT_ID_CHARS, MAX_REPORT_ID_CHARS + 1, 1_000]),
    ),
)
INT32 = st.integers(-(2**31), 2**31 - 1)
TERMS = st.one_of(
    st.none(),
    st.sampled_from([0, 1, DEFAULT_TOP_TERMS, MAX_TOP_TERMS - 1, MAX_TOP_TERMS]),
    st.sampled_from([-1, MAX_TOP_TERMS + 1, -(2**31), 2**31 - 1]),
    INT32,
)


def _request(text: str, report_id: str, terms: int | None) -> bytes:
    request = pb.ClassifyRequest(text=text, report_id=report_id)
    if terms is not None:
        request.max_explanation_terms = terms
    return request.SerializeToString()


REPORTS = st.tuples(
    st.one_of(st.text(ANY_CHAR, max_size=80), st.sampled_from(EDGE_TEXTS), LONG_TEXTS),
    REPORT_IDS,
    TERMS,
)
# Repeated up to the batch limit and past it, and so past the size limit too.
COPIES = st.one_of(st.just(1), st.sampled_from([2, MAX_BATCH - 1, MAX_BATCH, MAX_BATCH + 1]))


@given(text=TEXTS, report_id=REPORT_IDS, terms=TERMS)
@FUZZ
def test_any_classify_request_gets_its_answer_or_its_documented_status(
    live: Live, tiny_model: TriageModel, text: str, report_id: str, terms: int | None
) -> None:
    _assert_classify(live, _request(text, report_id, terms), tiny_model)
    _assert_still_serving(live)


def _batch(reports: Sequence[bytes]) -> bytes:
    return b"".join(_length_delimited(1, report) for report in reports)


@pytest.mark.parametrize("live", list(WORKERS), indirect=True)
@given(reports=st.lists(REPORTS, max_size=8), copies=COPIES)
@FUZZ
def test_any_batch_gets_one_answer_per_report_or_its_documented_status(
    live: Live,
    tiny_model: TriageModel,
    reports: list[tuple[str, str, int | None]],
    copies: int,
) -> None:
    encoded = [_request(*report) for report in reports] * copies
    _assert_batch(live, _batch(encoded), encoded, tiny_model)
    _assert_still_serving(live)


# ---------------------------------------------------------------------------------------------
# Raw bytes: protobuf wire format built by hand.


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, data: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(data)) + data


INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xfe",
    b"\x80",  # a continuation byte alone
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xe2\x82",  # cut short
    b"\xc0\xaf",  # overlong '/'
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # a five-byte form
)
UTF8_VALUES = st.text(ANY_CHAR, max_size=30).map(str.encode)
BAD_UTF8_VALUES = st.one_of(
    st.sampled_from(INVALID_UTF8),
    st.tuples(UTF8_VALUES, st.sampled_from(INVALID_UTF8), UTF8_VALUES).map(b"".join),
    # 0xff is never part of UTF-8, wherever it stands.
    st.tuples(st.binary(max_size=15), st.binary(max_size=15)).map(lambda p: p[0] + b"\xff" + p[1]),
)


STRING_FIELDS = st.builds(
    _length_delimited, st.sampled_from([1, 2]), st.one_of(UTF8_VALUES, BAD_UTF8_VALUES)
)
TERMS_FIELDS = st.builds(
    lambda value: _tag(3, 0) + _varint(value),
    st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([51, 2**31, 2**32 - 1, 2**64 - 1])),
)
UNKNOWN_FIELDS = st.one_of(
    st.builds(
        lambda n, v: _tag(n, 0) + _varint(v), st.integers(4, 2**29 - 1), st.integers(0, 2**64 - 1)
    ),
    st.builds(lambda n, b: _tag(n, 1) + b, st.integers(4, 99), st.binary(min_size=8, max_size=8)),
    st.builds(_length_delimited, st.integers(4, 99), st.binary(max_size=20)),
    st.builds(lambda n, b: _tag(n, 5) + b, st.integers(4, 99), st.binary(min_size=4, max_size=4)),
    st.builds(lambda v: _tag(1, 0) + _varint(v), st.integers(0, 300)),  # text as a number
    st.builds(lambda b: _length_delimited(3, b), st.binary(max_size=6)),  # terms as bytes
)
# Well-formed reports: string fields that may not be UTF-8, repeated fields, unknown fields.
WIRE_REPORTS = st.lists(
    st.one_of(STRING_FIELDS, STRING_FIELDS, TERMS_FIELDS, UNKNOWN_FIELDS), max_size=6
).map(b"".join)


def _damage(payload: bytes, how: str, where: int, junk: bytes) -> bytes:
    cut = where % (len(payload) + 1)
    if how == "truncate":
        return payload[:cut]
    if how == "append":
        return payload + junk
    if how == "insert":
        return payload[:cut] + junk + payload[cut:]
    # A length that claims more bytes than follow.
    return payload + _tag(1, 2) + _varint(len(junk) + 1 + where % 1_000) + junk


DAMAGES = st.sampled_from(["truncate", "append", "insert", "overlong"])
DAMAGED = st.builds(
    _damage,
    st.one_of(WIRE_REPORTS, st.builds(_request, st.text(max_size=30), REPORT_IDS, TERMS)),
    DAMAGES,
    st.integers(0, 2**16),
    st.binary(min_size=1, max_size=12),
)
# A readable report with one field more: unknown (ignored), not UTF-8, or a number.
EXTENDED = st.builds(
    bytes.__add__,
    st.builds(_request, st.sampled_from(EDGE_TEXTS[-8:]), SHORT_IDS, TERMS),
    st.one_of(STRING_FIELDS, TERMS_FIELDS, UNKNOWN_FIELDS),
)
RAW_REPORTS = st.one_of(WIRE_REPORTS, EXTENDED, DAMAGED, st.binary(max_size=64))


@given(payload=RAW_REPORTS)
@example(payload=_length_delimited(1, b"\xff\xfe"))  # issue 10 item 8: INTERNAL before
@example(payload=_length_delimited(1, b"hello") + _length_delimited(2, b"id-\xc3\x28"))
@example(payload=b"\x0a\x10abc")  # a length past the end
@example(payload=b"\xff\xff\xff")
@FUZZ
def test_any_classify_bytes_get_an_answer_or_invalid_argument(
    live: Live, tiny_model: TriageModel, payload: bytes
) -> None:
    _assert_classify(live, payload, tiny_model)
    _assert_still_serving(live)


BATCH_PARTS = st.lists(
    st.one_of(
        WIRE_REPORTS,
        st.builds(_request, st.text(ANY_CHAR, max_size=60), REPORT_IDS, TERMS),
    ),
    max_size=6,
)


@given(reports=BATCH_PARTS)
@example(reports=[_request(KNOWN_TEXT, "a", None), _length_delimited(1, b"\xff"), b""])
@FUZZ
def test_a_report_that_is_not_utf8_fails_only_its_own_batch_result(
    live: Live, tiny_model: TriageModel, reports: list[bytes]
) -> None:
    _assert_batch(live, _batch(reports), reports, tiny_model)
    _assert_still_serving(live)


# Any bytes at all, to every method (and the health service): an answer or INVALID_ARGUMENT.
METHODS: dict[str, Callable[[bytes], Message]] = {
    f"{SERVICE}/Classify": pb.ClassifyRequest.FromString,
    f"{SERVICE}/ClassifyBatch": pb.ClassifyBatchRequest.FromString,
    f"{SERVICE}/GetModelInfo": pb.GetModelInfoRequest.FromString,
    "grpc.health.v1.Health/Check": health_pb2.HealthCheckRequest.FromString,
}
ANY_BYTES = st.one_of(
    st.binary(max_size=200),
    RAW_REPORTS,
    RAW_REPORTS.map(lambda report: _length_delimited(1, report)),  # as one report of a batch
    st.builds(lambda data: _length_delimited(1, data), BAD_UTF8_VALUES),
)


@given(method=st.sampled_from(sorted(METHODS)), payload=ANY_BYTES)
@example(method="grpc.health.v1.Health/Check", payload=_length_delimited(1, b"\xff"))
@example(method=f"{SERVICE}/GetModelInfo", payload=b"\x0a\x05")
@FUZZ
def test_any_bytes_to_any_method_get_an_answer_or_invalid_argument(
    live: Live, tiny_model: TriageModel, method: str, payload: bytes
) -> None:
    if method.endswith("/Classify"):
        _assert_classify(live, payload, tiny_model)
    elif method.endswith("/ClassifyBatch"):
        _assert_any_batch(live, payload, tiny_model)
    else:
        _assert_other(live, method, payload)
    _assert_still_serving(live)


def _assert_any_batch(live: Live, payload: bytes, model: TriageModel) -> None:
    """Bytes that are no batch at all: INVALID_ARGUMENT. Else each report is read alone, as
    :func:`_assert_batch` checks (a report's bytes re-encoded keep each field's last value)."""
    try:
        reports = LenientBatch.FromString(payload).reports
    except DecodeError:
        _, error = _outcome(lambda: live.call(f"{SERVICE}/ClassifyBatch", payload))
        assert error is not None and error.code() == INVALID_ARGUMENT, "answered unreadable bytes"
        return
    _assert_batch(live, payload, [report.SerializeToString() for report in reports], model)


def _assert_other(live: Live, method: str, payload: bytes) -> None:
    """GetModelInfo and the health check: their answer, NOT_FOUND for a service the health
    check does not know, INVALID_ARGUMENT for bytes that are not their request."""
    answer, error = _outcome(lambda: live.call(method, payload))
    try:
        request = METHODS[method](payload)
    except DecodeError:
        assert error is not None and error.code() == INVALID_ARGUMENT, "answered unreadable bytes"
        return
    if isinstance(request, health_pb2.HealthCheckRequest) and request.service not in (
        "",
        SERVICE,
    ):
        assert error is not None and error.code() == grpc.StatusCode.NOT_FOUND
        return
    assert answer is not None, f"{error.code()}: {error.details()}" if error else ""


# ---------------------------------------------------------------------------------------------
# Streams: good and bad reports in any order, and each gets its answer.

GOOD_REPORTS = st.tuples(
    st.one_of(st.sampled_from(EDGE_TEXTS[-6:]), st.text(ANY_CHAR, min_size=1, max_size=80)).filter(
        str.strip
    ),
    SHORT_IDS,
    st.one_of(st.none(), st.integers(0, MAX_TOP_TERMS)),
).map(lambda report: _request(*report))
BAD_REPORTS = st.one_of(
    st.tuples(st.sampled_from(EDGE_TEXTS[:4]), REPORT_IDS, TERMS).map(lambda r: _request(*r)),
    st.builds(_request, st.just(Long("x", MAX_TEXT + 1)), REPORT_IDS, st.none()),
    st.builds(_request, st.just("ok"), REPORT_IDS, st.sampled_from([-1, MAX_TOP_TERMS + 1])),
    st.builds(lambda data: _length_delimited(1, data), BAD_UTF8_VALUES),
    st.builds(lambda data: _length_delimited(2, data), BAD_UTF8_VALUES),
    DAMAGED,
    st.sampled_from([b"\xff\xff\xff", b"\x0a\x10abc", b"\x1a\x80"]),
)
STREAMS = st.lists(st.one_of(GOOD_REPORTS, BAD_REPORTS), min_size=1, max_size=8)


def _assert_stream(live: Live, payloads: list[bytes], model: TriageModel) -> None:
    """One answer per report, in order, whatever came before it; the stream never ends early.
    It always ends with the known report: after anything, that one is scored as before."""
    payloads = [*payloads, _request(KNOWN_TEXT, "last", None)]
    answers, error = _outcome(lambda: live.stream(payloads))
    assert answers is not None, (
        f"the stream ended: {error.code()}: {error.details()}" if error else ""
    )
    assert len(answers) == len(payloads)
    for answer, payload in zip(answers, payloads, strict=True):
        _assert_answers(pb.ClassifyResponse.FromString(answer), read_report(payload), model)
    assert pb.ClassifyResponse.FromString(answers[-1]).label == live.known_label


@given(payloads=STREAMS)
@example(payloads=[_request(KNOWN_TEXT, "s0", None), _length_delimited(1, b"\xff\xfe")])
@example(payloads=[b"\xff\xff\xff"])
@FUZZ
def test_a_stream_answers_every_report_in_order_after_any_bad_one(
    live: Live, tiny_model: TriageModel, payloads: list[bytes]
) -> None:
    _assert_stream(live, payloads, tiny_model)
    _assert_still_serving(live)


@MODEL_PROCESSES
@given(payloads=STREAMS)
@example(payloads=[_length_delimited(2, b"\xc0\xaf"), _request("my card was cloned", "s1", 0)])
@FUZZ_MODEL_PROCESSES
def test_a_stream_scored_in_model_processes_answers_every_report(
    live: Live, tiny_model: TriageModel, payloads: list[bytes]
) -> None:
    _assert_stream(live, payloads, tiny_model)
    _assert_still_serving(live)
