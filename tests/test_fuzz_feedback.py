"""Fuzzing the reviewer's side of the decision record: any feedback or look-up gets its
documented answer, and the record keeps its limits.

Three surfaces that take hostile input: SubmitFeedback and GetDecision over real gRPC on a
recording server (any bytes in any field, hand-built wire messages, every role), ``triage
feedback import FILE`` on any file (CSV or JSONL), and the journal's spool reader on any line.
Each runs on a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from sqlalchemy import select

from tests.stores import BACKENDS, store_url_for
from triage.cli import main
from triage.core.artifacts import CURRENT
from triage.rpc.app import ServeConfig, TriageServer
from triage.runtime.recording import RecordConfig
from triage.store import schema
from triage.store.database import Store, decision_of, feedback_of, open_store
from triage.store.records import Decision, Feedback, SealedText, ShadowDecision
from triage.store.spool_format import read_spool_line, spool_line
from triage.v1 import incoming_pb2 as incoming
from triage.v1 import triage_pb2 as pb

T = TypeVar("T")
Quoting = Literal[0, 1, 2, 3]  # csv.QUOTE_*

SERVICE = "triage.v1.TriageService"
CALL_TIMEOUT = 15.0  # every fuzzed call; none should come near it
STOP_TIMEOUT = 15.0
SECONDS_PER_LINE = 2.0  # the spool reader: microseconds per line, this is only a hang guard
SERVING = health_pb2.HealthCheckResponse.SERVING

CLIENT = "desk-1 client-token-5b1e9c"
REVIEWER = "alice reviewer-token-77d0aa"
ADMIN = "ops admin-token-c2f1e0"
TOKENS = {"client": CLIENT, "reviewer": REVIEWER, "admin": ADMIN}

# The limits SubmitFeedbackRequest documents (triage.proto), in characters.
FIELD_LIMITS = {
    "decision_id": 36,
    "report_id": 256,
    "label": 64,
    "reviewer": 256,
    "note": 2_000,
    "feedback_id": 36,
}
FIELD_NUMBERS = {name: number for number, name in enumerate(FIELD_LIMITS, start=1)}
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,  # only for a call without a valid token
}

# Bounded for CI: a few seconds per test, the same examples on every run.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_RPC = settings(FUZZ, max_examples=120)  # a call takes milliseconds: more of them


# ---------------------------------------------------------------------------------------------
# A recording server with a few decisions on record, on each backend.

# Reports scored once the server is up: (report_id, text). "twice" is scored twice, so that a
# report id names more than one decision (feedback by report id goes to the latest).
SCORED = (
    ("r-1", "Someone called pretending to be my bank and I transferred 900 pounds."),
    ("twice", "My email account was hacked and used to send spam to all my contacts."),
    ("twice", "A man was filming the staff entrance of the stadium and ran off."),
    ("报告-7", "Somebody stole the bicycle from outside the library."),
    ("", "There was something on the street earlier today."),
)


@dataclass(repr=False)
class Recording:
    """A running recording server, a channel to it, and what the test knows is on record."""

    server: TriageServer
    channel: grpc.Channel
    store: Store
    decisions: dict[str, Decision]  # by decision id
    latest_for_report: dict[str, str]  # report id -> the decision feedback by report id hits

    def __repr__(self) -> str:  # a failing example shows the backend, not every decision
        return f"Recording({self.store.dialect})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's printer
        printer.text(repr(self))

    def call(self, method: str, payload: bytes, role: str | None) -> tuple[grpc.StatusCode, bytes]:
        """``payload`` as ``method``'s request from a caller of ``role`` (None: no token): the
        status and the answer's bytes (the message's, for an error). Never an undocumented
        status, a traceback or the store's address."""
        metadata = () if role is None else (("authorization", f"Bearer {_token(role)}"),)
        call = self.channel.unary_unary(f"/{SERVICE}/{method}", _identity, _identity)
        try:
            answer: bytes = call(bytes(payload), metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            error = err
        else:
            _event(f"{method} OK")
            return grpc.StatusCode.OK, answer
        # Asserted outside the except block: a failure reads as itself, not as a chained error.
        code, details = error.code(), error.details() or ""
        assert code in DOCUMENTED, f"{method}: {code}: {details}"
        assert "Traceback" not in details and self.store.url not in details
        _event(f"{method} {code.name}")
        return code, details.encode()


def _event(name: str) -> None:
    if currently_in_test_context():  # the plain tests here share the helpers
        event(name)


def _identity(payload: bytes) -> bytes:
    return payload  # raw bytes on the wire, exactly as built


def _token(role: str) -> str:
    if role == "wrong":
        return "not-a-token-anyone-has"
    return TOKENS[role].split()[-1]


@pytest.fixture(scope="module", params=BACKENDS)
def recording(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _models_template: Path,
) -> Iterator[Recording]:
    work = tmp_path_factory.mktemp(f"fuzz-feedback-{request.param}")
    with store_url_for(request.param, work) as url:
        config = ServeConfig(
            model_path=_models_template / CURRENT,
            port=0,
            watch_seconds=0,
            tokens=(CLIENT,),
            reviewer_tokens=(REVIEWER,),
            admin_tokens=(ADMIN,),
            record=RecordConfig(store_url=url, spool_dir=work / "spool", quality_seconds=0),
        )
        server = TriageServer(config).start()
        store = open_store(url, create=False)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            yield _on_record(server, channel, store)
        finally:
            channel.close()
            store.close()
            _stop(server)


def _on_record(server: TriageServer, channel: grpc.Channel, store: Store) -> Recording:
    classify = channel.unary_unary(
        f"/{SERVICE}/Classify", pb.ClassifyRequest.SerializeToString, pb.ClassifyResponse.FromString
    )
    metadata = (("authorization", f"Bearer {_token('client')}"),)
    ids = [
        classify(pb.ClassifyRequest(text=text, report_id=report_id), metadata=metadata, timeout=10)
        for report_id, text in SCORED
    ]
    assert server.recorder is not None and server.recorder.journal.flush(30)
    decisions = {}
    for answer in ids:
        view = store.decision(answer.decision_id)
        assert view is not None, "an answered decision is not on record"
        decisions[answer.decision_id] = view.decision
    latest: dict[str, Decision] = {}
    for decision in decisions.values():
        if decision.report_id:
            known = latest.get(decision.report_id)
            key = (decision.received_at, decision.decision_id)
            if known is None or key > (known.received_at, known.decision_id):
                latest[decision.report_id] = decision
    return Recording(
        server=server,
        channel=channel,
        store=store,
        decisions=decisions,
        latest_for_report={r: d.decision_id for r, d in latest.items()},
    )


def _stop(server: TriageServer) -> None:
    """Stop the server, failing (not hanging) if a fuzzed call left something it cannot end."""
    stopping = threading.Thread(target=server.stop, kwargs={"grace": 0}, daemon=True)
    stopping.start()
    stopping.join(STOP_TIMEOUT)
    assert not stopping.is_alive(), f"the server did not stop within {STOP_TIMEOUT:g} s"


def _assert_still_serving(live: Recording) -> None:
    check = health_pb2_grpc.HealthStub(live.channel).Check
    status = check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
    assert status.status == SERVING


def _assert_record_within_limits(store: Store) -> None:
    """Every feedback row is one the documented limits allow, about a decision on record, with
    labels that decision's model knows."""
    with store.connect() as connection:
        rows = [feedback_of(r) for r in connection.execute(select(schema.feedback))]
        decisions = {
            d.decision_id: d
            for d in (decision_of(r) for r in connection.execute(select(schema.decisions)))
        }
    for row in rows:
        assert row.feedback_id == str(uuid.UUID(row.feedback_id)), row
        decision = decisions.get(row.decision_id)
        assert decision is not None, f"feedback about no decision: {row}"
        assert row.report_id == decision.report_id, row
        assert row.new_label in decision.scores and row.old_label in decision.scores, row
        assert row.reviewer and row.reviewer == row.reviewer.strip(), row
        assert len(row.reviewer) <= FIELD_LIMITS["reviewer"], row
        assert len(row.note) <= FIELD_LIMITS["note"], row
        assert len(row.recorded_by) <= FIELD_LIMITS["reviewer"], row
        assert row.source in ("rpc", "import"), row


# ---------------------------------------------------------------------------------------------
# What the server must make of a request, from its bytes alone.


def _text(raw: bytes, limit: int) -> str | None:
    """A field as the contract reads it: UTF-8 of at most ``limit`` characters, stripped;
    None when it must refuse the request."""
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return value.strip() if len(value) <= limit else None


@dataclass(frozen=True)
class Expected:
    """What a SubmitFeedback request must get."""

    code: grpc.StatusCode
    decision_id: str = ""  # for OK: the decision corrected
    replay_of: Feedback | None = None  # for OK: a retry answered with the row on record
    # A field holds U+0000: valid UTF-8 that PostgreSQL cannot store as text. Refusing it
    # (INVALID_ARGUMENT) is as right as keeping it; UNAVAILABLE is not.
    may_refuse_nul: bool = False


def _role_refusal(role: str | None) -> grpc.StatusCode | None:
    """How a reviewer's method refuses a caller of ``role``; None: it may call it."""
    if role in (None, "wrong"):
        return grpc.StatusCode.UNAUTHENTICATED
    return grpc.StatusCode.PERMISSION_DENIED if role == "client" else None


def expected_feedback(
    live: Recording, request: incoming.IncomingSubmitFeedbackRequest, role: str | None
) -> Expected:
    """The documented outcome of SubmitFeedback ``request`` from a caller of ``role``."""
    expected = _expected_feedback(live, request, role)
    fields = [getattr(request, name) for name in FIELD_LIMITS]
    if expected.code != grpc.StatusCode.INVALID_ARGUMENT and any(b"\x00" in f for f in fields):
        return replace(expected, may_refuse_nul=True)
    return expected


def _expected_feedback(
    live: Recording, request: incoming.IncomingSubmitFeedbackRequest, role: str | None
) -> Expected:
    refusal = _role_refusal(role)
    if refusal is not None:
        return Expected(refusal)
    refused = Expected(grpc.StatusCode.INVALID_ARGUMENT)
    fields = {name: _text(getattr(request, name), n) for name, n in FIELD_LIMITS.items()}
    if any(value is None for value in fields.values()):
        return refused
    values: dict[str, str] = {name: value or "" for name, value in fields.items()}
    decision_id, report_id, label = values["decision_id"], values["report_id"], values["label"]
    if not (decision_id or report_id) or not label:
        return refused
    if values["feedback_id"]:
        try:
            feedback_id = str(uuid.UUID(values["feedback_id"]))
        except ValueError:
            return refused
        with live.store.connect() as connection:
            row = connection.execute(
                select(schema.feedback).where(schema.feedback.c.feedback_id == feedback_id)
            ).one_or_none()
        if row is not None:
            first = feedback_of(row)
            same = (not decision_id or first.decision_id == decision_id) and (
                not report_id or first.report_id == report_id
            )
            if same and first.new_label == label:
                return Expected(grpc.StatusCode.OK, first.decision_id, replay_of=first)
            return refused
    if decision_id:
        decision = live.decisions.get(decision_id)
        if decision is None:
            return Expected(grpc.StatusCode.NOT_FOUND)
        if report_id and decision.report_id != report_id:
            return refused
    elif report_id in live.latest_for_report:
        decision = live.decisions[live.latest_for_report[report_id]]
    else:
        return Expected(grpc.StatusCode.NOT_FOUND)
    if label not in decision.scores:
        return refused
    return Expected(grpc.StatusCode.OK, decision.decision_id)


def _assert_feedback(live: Recording, payload: bytes, role: str | None) -> None:
    """SubmitFeedback with ``payload``: its documented status; an OK recorded as asked, and the
    decision's history shows it."""
    try:
        request = incoming.IncomingSubmitFeedbackRequest.FromString(payload)
    except DecodeError:  # no message at all: refused, once the role is checked
        code, answer = live.call("SubmitFeedback", payload, role)
        assert code == (_role_refusal(role) or grpc.StatusCode.INVALID_ARGUMENT), answer
        return
    want = expected_feedback(live, request, role)  # before the call: it reads the record
    before = ""
    if want.code == grpc.StatusCode.OK and want.replay_of is None:
        before = _decision_record(live, want.decision_id).current_label
    code, answer = live.call("SubmitFeedback", payload, role)
    if want.may_refuse_nul and code == grpc.StatusCode.INVALID_ARGUMENT:
        return
    assert code == want.code, f"{code.name}: {answer.decode(errors='replace')}"
    if code != grpc.StatusCode.OK:
        return
    response = pb.SubmitFeedbackResponse.FromString(answer)
    label = request.label.decode().strip()
    assert (response.decision_id, response.new_label) == (want.decision_id, label)
    if want.replay_of is not None:
        first = want.replay_of
        assert (response.feedback_id, response.old_label) == (first.feedback_id, first.old_label)
        return
    assert response.feedback_id == str(uuid.UUID(response.feedback_id))
    assert response.old_label == before
    record = _decision_record(live, want.decision_id)
    assert record.current_label == label
    latest = record.feedback[-1]
    assert (latest.feedback_id, latest.new_label) == (response.feedback_id, label)
    assert latest.note == request.note.decode().strip()
    caller = TOKENS[role or ""].split()[0]  # the token's name
    assert latest.reviewer == (request.reviewer.decode().strip() or caller)
    assert latest.recorded_by == caller


def _decision_record(live: Recording, decision_id: str) -> pb.DecisionRecord:
    code, answer = live.call(
        "GetDecision", pb.GetDecisionRequest(decision_id=decision_id).SerializeToString(), "admin"
    )
    assert code == grpc.StatusCode.OK, answer
    return pb.DecisionRecord.FromString(answer)


# ---------------------------------------------------------------------------------------------
# Field values: the ones on record and their near misses, any text, bytes that are not UTF-8,
# and values around and far past each limit.


class Made(bytes):
    """Long bytes, shown in a failing example as how they were made, not as themselves."""

    spec: str

    def __new__(cls, data: bytes, spec: str) -> Made:
        made = super().__new__(cls, data)
        made.spec = spec
        return made

    def __repr__(self) -> str:
        return self.spec


def _long(unit: str, length: int) -> Made:
    return Made((unit * length).encode(), f"_long({unit!r}, {length})")


class Shown(str):
    """A long text, shown in a failing example as how it was made, not as its characters."""

    spec: str

    def __new__(cls, text: str, spec: str) -> Shown:
        made = super().__new__(cls, text)
        made.spec = spec
        return made

    def __repr__(self) -> str:
        return self.spec


def _repeated(unit: str, length: int) -> Shown:
    return Shown(unit * length, f"{unit!r} * {length}")


def _nested(depth: int) -> Shown:
    return Shown("[" * depth + "]" * depth, f"_nested({depth})")


def _nested_bytes(depth: int) -> Made:
    return Made(_nested(depth).encode(), f"_nested_bytes({depth})")


INVALID_UTF8 = (
    b"\xff",
    b"\x80",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xc0\xaf",
    b"\xed\xa0\x80",  # a surrogate, encoded
    b"\xf4\x90\x80\x80",  # past U+10FFFF
)
EDGE = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\n\r\x0b\x0c\x1c\x85\u2028\u3000",
    "\u200b\ufeff",
    "\u202e\u2066x\u2069",
    "Robert'); DROP TABLE feedback;--",
    "%s %d {0} ${x}",
    "\\N",
)


def _texts(limit: int) -> st.SearchStrategy[bytes]:
    units = st.sampled_from(["a", "é", "中", "😀", " ", "\x00"])
    return st.one_of(
        st.text(max_size=40).map(str.encode),
        st.sampled_from(EDGE).map(str.encode),
        st.sampled_from(INVALID_UTF8),
        st.tuples(st.text(max_size=8), st.sampled_from(INVALID_UTF8)).map(
            lambda p: p[0].encode() + p[1]
        ),
        st.builds(_long, units, st.sampled_from([limit, limit + 1, limit * 4 + 1, 300_000])),
    )


def _variants(value: str) -> list[bytes]:
    """A value on record (first) and the near misses a careless caller sends."""
    return [
        value.encode(),
        f"  {value}\n".encode(),  # padded: read as the value
        value.upper().encode(),
        value[:-1].encode(),
        (value + "\x00").encode(),
        ("{" + value + "}").encode(),
    ]


@dataclass(frozen=True)
class OnRecord:
    """The ``index``-th decision id (or report id) on record, spelt as the ``variant``-th of
    :func:`_variants` (0: exactly). The ids exist only once the server has answered, so the
    strategies draw this and each example resolves it."""

    kind: str  # "decision" or "report"
    index: int
    variant: int = 0

    def resolve(self, live: Recording) -> bytes:
        values = sorted(live.decisions if self.kind == "decision" else live.latest_for_report)
        return _variants(values[self.index % len(values)])[self.variant]


Value = bytes | OnRecord


def _resolved(live: Recording, value: Value) -> bytes:
    return value.resolve(live) if isinstance(value, OnRecord) else value


def _mostly(likely: st.SearchStrategy[T], other: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``likely`` three times in four: most requests get past each check, so that every later
    check is reached too."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda yes: likely if yes else other)


def _ids_on_record(kind: str, elsewhere: st.SearchStrategy[bytes]) -> st.SearchStrategy[Value]:
    """An id on record, mostly exactly; else a near miss of one, or ``elsewhere``."""
    index = st.integers(0, len(SCORED) - 1)
    return _mostly(
        st.builds(OnRecord, st.just(kind), index),
        st.builds(OnRecord, st.just(kind), index, st.integers(1, 5)) | elsewhere,
    )


# Values a reviewer plausibly sends, field by field: on record or near it.
KNOWN: dict[str, st.SearchStrategy[Value]] = {
    "decision_id": _ids_on_record(
        "decision",
        st.uuids().map(lambda u: str(u).encode()),  # well formed, on record nowhere
    ),
    "report_id": _ids_on_record("report", st.just(b"never-seen")),
    "label": _mostly(
        st.sampled_from([b"cybercrime", b"fraud", b"general", b"terrorism_concern"]),
        st.sampled_from([b"parking", b" fraud ", b"FRAUD", b"hate_crime"]),
    ),
    "reviewer": st.sampled_from([b"", b"Sgt Jones", b"  "]),
    "note": st.sampled_from([b"", b"bank scam after all"]),
    "feedback_id": st.one_of(
        st.uuids().map(lambda u: str(u).encode()),
        st.uuids().map(lambda u: u.hex.upper().encode()),  # a UUID spelt otherwise
        st.just(b"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),  # reused across examples
    ),
}


@st.composite
def feedback_requests(draw: st.DrawFn) -> dict[str, Value]:
    """A plausible request (a target on record, or nearly; a label; sometimes a reviewer, a
    note, a feedback id), then, one time in four, a field or two replaced by anything at all."""
    target = draw(
        st.sampled_from(["decision", "decision", "report", "report", "both", "neither"]),
        label="target",
    )
    fields: dict[str, Value] = {}
    if target in ("decision", "both"):
        fields["decision_id"] = draw(KNOWN["decision_id"], label="decision_id")
    if target in ("report", "both"):
        fields["report_id"] = draw(KNOWN["report_id"], label="report_id")
    fields["label"] = draw(KNOWN["label"], label="label")
    for name in ("reviewer", "note", "feedback_id"):
        if draw(st.booleans(), label=f"with {name}"):
            fields[name] = draw(KNOWN[name], label=name)
    hostile = st.lists(st.sampled_from(sorted(FIELD_LIMITS)), min_size=1, max_size=2, unique=True)
    for name in draw(_mostly(st.just([]), hostile), label="hostile"):
        fields[name] = draw(_texts(FIELD_LIMITS[name]), label=f"hostile {name}")
    return fields


def _feedback_bytes(live: Recording, fields: dict[str, Value]) -> bytes:
    resolved = {name: _resolved(live, value) for name, value in fields.items()}
    return incoming.IncomingSubmitFeedbackRequest(**resolved).SerializeToString()


# Mostly callers that may call the reviewer's methods, so that their checks are reached.
ROLES = _mostly(st.sampled_from(["reviewer", "admin"]), st.sampled_from(["client", "wrong", None]))
FIRST = OnRecord("decision", 0)
REUSED = b"0190a1b2-0000-7000-8000-00000000e5ed"  # only the examples below send it


@given(fields=feedback_requests(), role=ROLES)
@example(fields={"decision_id": FIRST, "label": b"general", "note": b"checked"}, role="reviewer")
@example(fields={"report_id": OnRecord("report", 1), "label": b"cybercrime"}, role="admin")
@example(fields={"decision_id": FIRST, "label": b"parking"}, role="reviewer")
@example(fields={"decision_id": FIRST, "label": b"general"}, role="client")
@example(
    fields={"decision_id": FIRST, "label": b"general", "note": _long("n", 2_001)}, role="admin"
)
@example(
    fields={"decision_id": FIRST, "label": b"fraud", "reviewer": _long("r", 257)}, role="admin"
)
@example(fields={"decision_id": OnRecord("decision", 0, 4), "label": b"fraud"}, role="reviewer")
@example(fields={"report_id": b"r-1", "label": b"general", "note": b"a\x00b"}, role="reviewer")
# One feedback id for two labels: whichever comes second is refused, not taken as a retry.
@example(fields={"decision_id": FIRST, "label": b"general", "feedback_id": REUSED}, role="admin")
@example(fields={"decision_id": FIRST, "label": b"fraud", "feedback_id": REUSED}, role="admin")
@FUZZ_RPC
def test_any_feedback_gets_its_documented_status_and_the_record_keeps_its_limits(
    recording: Recording, fields: dict[str, Value], role: str | None
) -> None:
    _assert_feedback(recording, _feedback_bytes(recording, fields), role)
    _assert_still_serving(recording)
    _assert_record_within_limits(recording.store)


@pytest.mark.parametrize(
    "fields",
    [
        {"report_id": b"r-1", "label": b"fraud", "note": b"a\x00b"},
        {"report_id": b"r-1", "label": b"general", "reviewer": b"Sgt\x00Jones"},
        {"report_id": b"r\x00", "label": b"fraud"},
        {"decision_id": b"\x00", "label": b"fraud"},
    ],
    ids=["note", "reviewer", "report_id", "decision_id"],
)
def test_a_nul_character_in_feedback_is_the_callers_problem_not_an_outage(
    recording: Recording, fields: dict[str, bytes]
) -> None:
    # Valid UTF-8, within every limit: PostgreSQL cannot store U+0000 in a text column, and
    # refusing it as UNAVAILABLE ("retry later") sends a careful client into retrying forever.
    payload = incoming.IncomingSubmitFeedbackRequest(**fields).SerializeToString()
    _assert_feedback(recording, payload, "reviewer")
    _assert_still_serving(recording)


# Hand-built wire messages: repeated fields (the last wins), unknown fields, wrong wire types,
# truncated and garbage bytes.


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


@dataclass(frozen=True)
class Wire:
    """A request's fields, then more: a field again (the last one counts), fields no version of
    the contract has, a known field with the wrong wire type; then, maybe, damage."""

    fields: dict[str, Value]
    more: tuple[tuple[int, Value] | bytes, ...] = ()
    damage: tuple[str, int, bytes] | None = None  # how, where, junk

    def payload(self, live: Recording) -> bytes:
        data = _feedback_bytes(live, self.fields)
        for part in self.more:
            if isinstance(part, bytes):
                data += part
            else:
                data += _length_delimited(part[0], _resolved(live, part[1]))
        if self.damage is None:
            return data
        how, where, junk = self.damage
        cut = where % (len(data) + 1)
        if how == "truncate":
            return data[:cut]
        if how == "insert":
            return data[:cut] + junk + data[cut:]
        return data + _varint(3 << 3 | 2) + _varint(len(junk) + 1 + where) + junk  # overlong


_AGAIN = st.one_of(
    *(
        st.tuples(st.just(FIELD_NUMBERS[name]), strategy | _texts(FIELD_LIMITS[name]))
        for name, strategy in KNOWN.items()
    )
)
_OTHER = st.one_of(
    st.builds(lambda n, v: _varint(n << 3) + _varint(v), st.integers(1, 99), st.integers(0)),
    st.builds(_length_delimited, st.integers(7, 2**29 - 1), st.binary(max_size=20)),
    st.builds(
        lambda n, b: _varint(n << 3 | 5) + b, st.integers(1, 9), st.binary(min_size=4, max_size=4)
    ),
)
_DAMAGE = st.tuples(
    st.sampled_from(["truncate", "insert", "overlong"]),
    st.integers(0, 2**16),
    st.binary(min_size=1, max_size=12),
)
WIRES = st.builds(
    Wire,
    feedback_requests(),
    st.lists(_AGAIN | _OTHER, max_size=4).map(tuple),
    _mostly(st.none(), _DAMAGE),
)


@given(wire=st.one_of(WIRES, st.binary(max_size=80)), role=ROLES)
@example(wire=b"", role="reviewer")  # an empty message
@example(wire=b"\x0a\x10abc", role="reviewer")  # a length past the end
@example(wire=Wire({"decision_id": FIRST, "label": b"fraud"}, ((3, b"\xff"),)), role="admin")
@example(wire=Wire({"decision_id": FIRST, "label": b"\xff"}, ((3, b"fraud"),)), role="admin")
@FUZZ_RPC
def test_any_feedback_bytes_get_their_documented_status(
    recording: Recording, wire: Wire | bytes, role: str | None
) -> None:
    payload = wire if isinstance(wire, bytes) else wire.payload(recording)
    _assert_feedback(recording, payload, role)
    _assert_still_serving(recording)
    _assert_record_within_limits(recording.store)


LOOK_UPS = st.one_of(
    st.builds(OnRecord, st.just("decision"), st.integers(0, len(SCORED) - 1)),
    KNOWN["decision_id"],
    KNOWN["report_id"],  # a report id where a decision id belongs
    _texts(36),
    st.binary(max_size=60),
    st.builds(lambda b: _length_delimited(1, b), st.binary(max_size=40)),  # nested junk
)


@given(value=LOOK_UPS, as_message=_mostly(st.just(True), st.just(False)), role=ROLES)
@example(value=FIRST, as_message=True, role="reviewer")
@example(value=FIRST, as_message=True, role="client")
@example(value=OnRecord("report", 0), as_message=True, role="reviewer")
@example(value=OnRecord("decision", 0, 1), as_message=True, role="admin")  # padded
@example(value=OnRecord("decision", 0, 4), as_message=True, role="admin")  # a NUL after it
@example(value=b"\xff", as_message=True, role="reviewer")
@FUZZ_RPC
def test_any_look_up_gets_the_decision_or_its_documented_status(
    recording: Recording, value: Value, as_message: bool, role: str | None
) -> None:
    raw = _resolved(recording, value)
    payload = raw  # the bytes themselves as the message: often no message at all
    if as_message:
        payload = incoming.IncomingGetDecisionRequest(decision_id=raw).SerializeToString()
    try:
        request: incoming.IncomingGetDecisionRequest | None = (
            incoming.IncomingGetDecisionRequest.FromString(payload)
        )
    except DecodeError:
        request = None
    code, answer = recording.call("GetDecision", payload, role)
    refusal = _role_refusal(role)
    if refusal is not None:
        assert code == refusal, answer
        return
    decision_id = None if request is None else _text(request.decision_id, 36)
    if not decision_id:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, answer
        return
    if "\x00" in decision_id and code == grpc.StatusCode.INVALID_ARGUMENT:
        return  # no decision id holds U+0000: refusing it is as right as not finding it
    decision = recording.decisions.get(decision_id)
    if decision is None:
        assert code == grpc.StatusCode.NOT_FOUND, answer
        return
    assert code == grpc.StatusCode.OK, answer
    found = pb.DecisionRecord.FromString(answer)
    assert (found.decision_id, found.report_id, found.label) == (
        decision.decision_id,
        decision.report_id,
        decision.label,
    )
    history = [f.new_label for f in found.feedback]
    assert found.current_label == (history[-1] if history else decision.label)
    _assert_still_serving(recording)


CONCURRENT_REVIEWS = 24


def test_concurrent_feedback_keeps_a_history_where_each_row_replaces_the_one_before(
    recording: Recording,
) -> None:
    # Reviewers correcting one decision at once: every row is kept and the latest wins, and
    # the history still reads as a chain ("who changed what"): each row's old label is the
    # label the row before it set (the first row's, the model's).
    request = pb.ClassifyRequest(text="My card was cloned at a cash machine.", report_id="busy")
    code, answer = recording.call("Classify", request.SerializeToString(), "client")
    assert code == grpc.StatusCode.OK, answer
    decision = pb.ClassifyResponse.FromString(answer)
    recorder = recording.server.recorder
    assert recorder is not None and recorder.journal.flush(30)
    view = recording.store.decision(decision.decision_id)
    assert view is not None
    recording.decisions[decision.decision_id] = view.decision  # on record, as the others are
    recording.latest_for_report["busy"] = decision.decision_id
    labels = sorted(view.decision.scores)

    def review(n: int) -> tuple[grpc.StatusCode, bytes]:
        fields = {"decision_id": decision.decision_id, "label": labels[n % len(labels)]}
        payload = pb.SubmitFeedbackRequest(**fields, reviewer=f"reviewer {n}")
        return recording.call("SubmitFeedback", payload.SerializeToString(), "reviewer")

    with ThreadPoolExecutor(CONCURRENT_REVIEWS) as pool:
        answers = list(pool.map(review, range(CONCURRENT_REVIEWS)))
    assert all(code == grpc.StatusCode.OK for code, _ in answers), answers
    history = _decision_record(recording, decision.decision_id).feedback
    assert len(history) == CONCURRENT_REVIEWS
    before = [decision.label] + [row.new_label for row in history[:-1]]
    broken = [
        f"row {n} ({row.reviewer}) replaced {row.old_label!r}, but the label was {was!r}"
        for n, (row, was) in enumerate(zip(history, before, strict=True), start=1)
        if row.old_label != was
    ]
    assert not broken, "\n".join(broken)


REPORT_IDS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(EDGE),
    st.sampled_from(["\x00", "id-\x00-1", "x" * 256, "中" * 256]),
)


@given(report_id=REPORT_IDS)
@example(report_id="nul\x00id")
@FUZZ
def test_every_decision_id_answered_can_be_looked_up(recording: Recording, report_id: str) -> None:
    # "A decision id comes back on every call and can be looked up" (issue 12): whatever the
    # report id, an answered decision is on record, under the id it was answered with.
    request = pb.ClassifyRequest(text="My card was cloned at a cash machine.", report_id=report_id)
    code, answer = recording.call("Classify", request.SerializeToString(), "client")
    if code == grpc.StatusCode.INVALID_ARGUMENT and "\x00" in report_id:
        return  # refusing U+0000 in an id is as right as keeping it; answering unrecorded is not
    assert code == grpc.StatusCode.OK, answer
    scored = pb.ClassifyResponse.FromString(answer)
    assert scored.decision_id and scored.report_id == report_id
    code, found = recording.call(
        "GetDecision",
        pb.GetDecisionRequest(decision_id=scored.decision_id).SerializeToString(),
        "reviewer",
    )
    assert code == grpc.StatusCode.OK, f"answered {scored.decision_id}, then {code.name}: {found!r}"
    decision = recording.store.decision(scored.decision_id)
    # The record keeps text with U+0000 as U+FFFD (documented in triage.store.database).
    stored_id = report_id.replace("\x00", "\ufffd")
    assert decision is not None and decision.decision.report_id == stored_id
    # Now on record: feedback by this report id goes to it.
    recording.decisions[scored.decision_id] = decision.decision
    if report_id:
        recording.latest_for_report[report_id] = scored.decision_id


# ---------------------------------------------------------------------------------------------
# `triage feedback import FILE`: any file gets exit 0 (every row on record) or exit 1 with a
# message naming the file (and the row at fault), nothing written.

# A record with decisions from two model versions, the second knowing a label the first does not.
V1_LABELS = ("cybercrime", "fraud", "general", "terrorism_concern")
V2_LABELS = (*V1_LABELS, "hate_crime")
IMPORT_DECISIONS = tuple(
    Decision(
        decision_id=f"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a{n:02d}",
        report_id=report_id,
        received_at=datetime(2026, 11, 1, 12, n, tzinfo=UTC),
        model_version=version,
        source="Classify",
        label="fraud",
        confidence=0.9,
        scores={label: 0.9 if label == "fraud" else 0.01 for label in labels},
        needs_review=False,
        reasons=(),
        caller="desk-1",
        latency_ms=1.0,
    )
    for n, (report_id, version, labels) in enumerate(
        [
            ("r-1", "v1", V1_LABELS),
            ("r-2", "v1", V1_LABELS),
            ("r-2", "v2", V2_LABELS),  # the latest for r-2
            ("r-3", "v2", V2_LABELS),
            ("", "v1", V1_LABELS),
        ]
    )
)


@dataclass(frozen=True)
class ImportStore:
    url: str
    store: Store
    work: Path

    def __repr__(self) -> str:
        return f"ImportStore({self.store.dialect})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@pytest.fixture(scope="module", params=BACKENDS)
def import_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImportStore]:
    work = tmp_path_factory.mktemp(f"fuzz-import-{request.param}")
    with store_url_for(request.param, work) as url:
        store = open_store(url)
        try:
            assert store.insert_decisions(IMPORT_DECISIONS) == len(IMPORT_DECISIONS)
            yield ImportStore(url, store, work)
        finally:
            store.close()


@dataclass(frozen=True)
class Imported:
    code: int
    out: str
    err: str
    before: int
    after: int


def _import(where: ImportStore, path: Path, *extra: str) -> Imported:
    """Run the command in this process (a traceback fails the test as the exception itself)."""
    before = where.store.count("feedback")
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            [
                "--log-level",
                "warning",
                "feedback",
                "import",
                str(path),
                "--store",
                where.url,
                *extra,
            ]
        )
    assert time.perf_counter() - started < 60
    return Imported(code, out.getvalue(), err.getvalue(), before, where.store.count("feedback"))


def _assert_all_or_nothing(result: Imported, path: Path) -> None:
    assert result.code in (0, 1), result
    if result.code == 1:
        assert str(path) in result.err, f"the message does not name the file: {result.err}"
        assert "Traceback" not in result.err
        assert result.after == result.before, "a refused file left rows behind"
        return
    summary = result.out.strip().splitlines()[0]
    assert summary.startswith(f"{path}: "), summary
    new = int(summary.split(" rows: ")[1].split(" new")[0])
    assert result.after - result.before == new


NAMES = st.sampled_from(["in.csv", "in.jsonl", "in.CSV", "in.ndjson"])
DECISION_IDS = [d.decision_id for d in IMPORT_DECISIONS]
HUGE_NUMBER = "9" * 5_000  # JSON that Python will not read as an int (over 4,300 digits)
_HUGE = "<huge number>"  # stands for HUGE_NUMBER in a JSON value, put in after json.dumps

# Values a careless or hostile file holds where a column's value belongs.
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.just(_HUGE),
    st.text(max_size=12),
    st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=2),  # surrogates
)
JSON_VALUES = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
HOSTILE = st.one_of(
    JSON_VALUES,
    st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=2),
    st.sampled_from(EDGE),
    st.sampled_from([257, 2_001, 140_000]).map(lambda n: _repeated("x", n)),  # past the limits
)
TIMES = [
    "2026-11-02T10:00:00Z",
    "2026-11-02",
    "2026-11-02T10:00:00",  # no offset: UTC
    "0001-01-01T00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "2999-01-01",  # the future
    "last tuesday",
]


def _plausibly(*values: str) -> st.SearchStrategy[object]:
    """One of ``values`` (that could be right) three times in four, else anything at all: most
    rows get as far as the store."""
    return _mostly(st.sampled_from(values), HOSTILE)


ROWS = st.fixed_dictionaries(
    {
        "report_id": _plausibly("r-1", "r-2", "r-3", "never-seen", ""),
        "label": _plausibly(*V2_LABELS, " fraud ", "parking"),
    },
    optional={
        "decision_id": _plausibly(*DECISION_IDS, ""),
        "reviewer": _plausibly("Sgt Jones", "", " "),
        "note": _plausibly("", "bank scam after all"),
        "created_at": _plausibly(*TIMES),
        "extra": JSON_VALUES,
    },
)


def _jsonl_line(row: dict[str, object]) -> str:
    try:
        line = json.dumps(row)
    except ValueError:
        line = "{}"
    return line.replace(json.dumps(_HUGE), HUGE_NUMBER)


JSON_LINES = st.one_of(
    ROWS.map(_jsonl_line),
    ROWS.map(_jsonl_line),
    st.sampled_from(["{", "}", "[]", "null", '"x"', "1e999", "-", "\x00", "{}", "", " "]),
    st.sampled_from([10, 1_000, 100_000]).map(_nested),  # deep nesting
    st.text(max_size=20),
)
JSONL_FILES = st.tuples(st.lists(JSON_LINES, max_size=8), st.sampled_from(["\n", "\r\n"])).map(
    lambda p: p[1].join(p[0]).encode("utf-8", errors="surrogatepass")
)


def _cell(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _csv_file(
    header: list[str], rows: list[dict[str, object]], quoting: Quoting, junk: str
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=quoting)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(column, "")) for column in header])
    out.write(junk)
    text = out.getvalue().replace(json.dumps(_HUGE), HUGE_NUMBER)
    return text.encode("utf-8", errors="surrogatepass")


HEADERS = st.sampled_from(
    [
        ["decision_id", "label", "reviewer", "note", "created_at"],
        ["report_id", "label", "reviewer", "note", "created_at"],
        ["decision_id", "report_id", "label", "reviewer", "extra"],
        ["\ufeffreport_id", "label", "reviewer"],  # a second BOM, inside the header
        ["label", "label", "report_id", "reviewer"],
        ["decision_id", "reviewer"],  # no label
        ["Label", "Report_ID"],
        [""],
    ]
)
CSV_JUNK = st.lists(
    st.sampled_from(['"', '""', ",", "\n", "\r\n", "\r", "\x00", "\ufeff", '",', ',"', "r-1"]),
    max_size=8,
).map("".join)
CSV_FILES = st.builds(
    _csv_file,
    HEADERS,
    st.lists(ROWS, max_size=6),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    CSV_JUNK,
)
BOMS = st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00\x00\xfe\xff"])
# (content, file name): mostly named for what they hold, so that rows get read.
ANY_FILE = st.one_of(
    st.tuples(st.binary(max_size=300), NAMES),
    st.tuples(st.builds(bytes.__add__, BOMS, CSV_FILES), st.sampled_from(["in.csv", "in.CSV"])),
    st.tuples(JSONL_FILES, st.sampled_from(["in.jsonl", "in.ndjson"])),
    st.tuples(st.one_of(CSV_FILES, JSONL_FILES), NAMES),
)

_VALID_CSV = "report_id,label,reviewer\nr-1,general,Sgt Jones\n"


@given(file=ANY_FILE)
@example(file=(_VALID_CSV.encode(), "in.csv"))
@example(file=(b'{"report_id": "r-1", "label": "fraud", "reviewer": "x"}\n', "in.jsonl"))
@example(file=(_nested_bytes(100_000), "in.jsonl"))
# Each of these once ended the command with a traceback.
@example(file=(b'{"report_id": "r-1", "label": ' + b"9" * 5000 + b"}\n", "in.jsonl"))
@example(file=(b'{"report_id": "\\ud800", "label": "fraud", "reviewer": "x"}', "in.jsonl"))
@example(file=(b"report_id,label,created_at\nr-1,fraud,0001-01-01T00:00+01:00\n", "in.csv"))
@example(file=(Made(b"report_id,label\n" + b"x" * 140_000 + b",fraud\n", "a long id"), "in.csv"))
@example(file=(Made(b"x" * 140_000 + b"\n", "a long header"), "in.csv"))  # over csv's limit
@FUZZ
def test_any_feedback_file_is_imported_whole_or_refused_naming_it(
    import_store: ImportStore, file: tuple[bytes, str]
) -> None:
    content, name = file
    path = import_store.work / name
    path.write_bytes(content)
    result = _import(import_store, path, "--reviewer", "import-desk")
    _assert_all_or_nothing(result, path)
    if result.code == 0:  # the same file again: nothing new
        again = _import(import_store, path, "--reviewer", "import-desk")
        assert (again.code, again.after) == (0, result.after), again
    _assert_record_within_limits(import_store.store)


# One bad row among good ones: the file is refused, and the message names that row.
GOOD_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "report_id": st.sampled_from(["r-1", "r-2", "r-3"]),
            "label": st.sampled_from(["fraud", "general", "cybercrime"]),
            "reviewer": st.sampled_from(["Sgt Jones", "PC Amir", "中文 名字"]),
            "note": st.text(max_size=30).map(lambda t: t.replace("\x00", "")),
        }
    ),
    min_size=1,
    max_size=5,
)
BAD_CELLS = {
    "an unknown label": {"label": "parking"},
    "a label only another model knows": {"report_id": "r-1", "label": "hate_crime"},
    "an unknown report": {"report_id": "never-seen"},
    "an unknown decision": {"decision_id": "00000000-0000-7000-8000-000000000000"},
    "a decision and a report that disagree": {"decision_id": DECISION_IDS[0], "report_id": "r-3"},
    "a note too long": {"note": "n" * 2_001},
    "a reviewer too long": {"reviewer": "r" * 257},
    "a time that is no time": {"created_at": "last tuesday"},
    "a time in the future": {"created_at": "2999-01-01T00:00:00Z"},
    "a time before year 1 in UTC": {"created_at": "0001-01-01T00:00+01:00"},
    "a time after year 9999 in UTC": {"created_at": "9999-12-31T23:59:59-05:00"},
    "a NUL in the report id": {"report_id": "r-1\x00"},
    "a NUL in the note": {"note": "a\x00b"},
}
# Whole JSON objects (between the braces): what only JSON can get wrong.
JSON_ONLY_BAD = {
    "a number for a label": '"report_id": "r-1", "reviewer": "x", "label": 7',
    "a list for a reviewer": '"report_id": "r-1", "label": "fraud", "reviewer": ["a"]',
    "a lone surrogate in the report id": (
        '"report_id": "\\udc80", "label": "fraud", "reviewer": "x"'
    ),
    "a lone surrogate in the note": (
        '"report_id": "r-1", "label": "fraud", "reviewer": "x", "note": "\\ud800"'
    ),
    "a number too long to read": '"report_id": "r-1", "reviewer": "x", "label": ' + "1" * 5_000,
}
# Fine on SQLite; PostgreSQL cannot store U+0000 in text, so there the row must be refused.
MAY_BE_RECORDED = {"a NUL in the report id", "a NUL in the note"}


@pytest.mark.parametrize("bad", sorted(BAD_CELLS) + sorted(JSON_ONLY_BAD))
@given(rows=GOOD_ROWS, at=st.integers(0, 5), as_csv=st.booleans())
# No shrinking: the bad row is the parameter, and a failing file is already a few rows.
@settings(FUZZ, max_examples=8, phases=(Phase.explicit, Phase.generate))
def test_a_file_with_one_bad_row_is_refused_naming_that_row(
    import_store: ImportStore, bad: str, rows: list[dict[str, str]], at: int, as_csv: bool
) -> None:
    at = at % (len(rows) + 1)
    as_csv = as_csv and bad in BAD_CELLS
    if as_csv:
        good = [dict(row, created_at="") for row in rows]
        poisoned = dict(good[0], **BAD_CELLS[bad])
        columns = ["decision_id", "report_id", "label", "reviewer", "note", "created_at"]
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, restval="")
        writer.writeheader()
        writer.writerows([*good[:at], poisoned, *good[at:]])
        path = import_store.work / "one-bad.csv"
        path.write_bytes(out.getvalue().encode("utf-8"))
    else:
        lines = [json.dumps(row) for row in rows]
        if bad in BAD_CELLS:
            poison = json.dumps(dict(rows[0], **BAD_CELLS[bad]))
        else:
            poison = "{" + JSON_ONLY_BAD[bad] + "}"
        lines.insert(at, poison)
        path = import_store.work / "one-bad.jsonl"
        path.write_text("\n".join(lines) + "\n", "ascii")
    result = _import(import_store, path)
    if bad in MAY_BE_RECORDED and result.code == 0:
        assert result.after - result.before in (0, len(rows) + 1)  # 0: imported before
        return
    assert result.code == 1, result
    assert f"{path}: row {at + 1}:" in result.err, result.err
    assert "Traceback" not in result.err
    assert result.after == result.before


# ---------------------------------------------------------------------------------------------
# The journal's spool reader: a record or ValueError, whatever the line.


def _decisions() -> st.SearchStrategy[Decision]:
    times = st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    texts = st.text(max_size=20)
    numbers = st.floats(allow_nan=False, allow_infinity=False)
    sealed = st.builds(SealedText, st.binary(max_size=40), st.text(max_size=16), times)
    return st.builds(
        Decision,
        decision_id=texts,
        report_id=texts,
        received_at=times,
        model_version=texts,
        source=texts,
        label=texts,
        confidence=numbers,
        scores=st.dictionaries(texts, numbers, max_size=4),
        needs_review=st.booleans(),
        reasons=st.lists(texts, max_size=3).map(tuple),
        caller=texts,
        latency_ms=st.none() | numbers,
        text=st.none() | sealed,
    )


def _shadows() -> st.SearchStrategy[ShadowDecision]:
    times = st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    numbers = st.floats(allow_nan=False, allow_infinity=False)
    return st.builds(
        ShadowDecision,
        decision_id=st.text(max_size=20),
        model_version=st.text(max_size=10),
        scored_at=times,
        label=st.text(max_size=10),
        confidence=numbers,
        scores=st.dictionaries(st.text(max_size=8), numbers, max_size=4),
        needs_review=st.booleans(),
        reasons=st.lists(st.text(max_size=8), max_size=3).map(tuple),
        latency_ms=st.none() | numbers,
    )


RECORDS = st.one_of(_decisions(), _shadows())


@given(record=RECORDS)
@FUZZ
def test_a_spool_line_reads_back_as_the_record_written(record: Decision | ShadowDecision) -> None:
    line = spool_line(record)
    assert line.endswith("\n") and "\n" not in line[:-1] and line.isascii()
    assert read_spool_line(line.encode("ascii")) == record


def _read_or_refuse(line: bytes) -> None:
    """``read_spool_line`` returns a record or raises ValueError: anything else (an
    OverflowError, a TypeError, ...) escapes it and fails the test."""
    started = time.perf_counter()
    try:
        record = read_spool_line(line)
    except ValueError as err:
        assert str(err)
        _event("refused")
    else:
        _event(type(record).__name__)
        assert isinstance(record, Decision | ShadowDecision)
        assert isinstance(record.decision_id, str) and isinstance(record.confidence, float)
        assert all(isinstance(p, float) for p in record.scores.values())
        assert record.latency_ms is None or isinstance(record.latency_ms, float)
        if isinstance(record, Decision):
            assert record.received_at.tzinfo is not None
            assert record.text is None or isinstance(record.text.ciphertext, bytes)
        else:
            assert record.scored_at.tzinfo is not None
    assert time.perf_counter() - started < SECONDS_PER_LINE


# A valid line with one field replaced by any JSON value (or removed), or cut anywhere.
SPOOL_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from([10**400, -(10**400), 1e308, 2, "2026-13-45T99:99", "", {"a": 10**400}]),
    st.sampled_from([{"ciphertext": "!!", "key_id": "k", "expires_at": "2026-01-01"}]),
)


def _edited(record: Decision | ShadowDecision, name: str | None, value: object) -> bytes:
    fields = json.loads(spool_line(record))
    if name is None:
        return json.dumps(fields).encode()
    if value is ...:
        fields.pop(name, None)
    else:
        fields[name] = value
    return json.dumps(fields, allow_nan=True).encode("utf-8", errors="surrogatepass")


EDITED_LINES = st.builds(
    _edited,
    RECORDS,
    st.none()
    | st.sampled_from(
        [
            "kind",
            "v",
            "decision_id",
            "report_id",
            "received_at",
            "scored_at",
            "confidence",
            "scores",
            "needs_review",
            "reasons",
            "latency_ms",
            "text",
        ]
    ),
    st.just(...) | SPOOL_VALUES,
)


@given(
    line=st.one_of(
        st.binary(max_size=200),
        EDITED_LINES,
        st.tuples(EDITED_LINES, st.integers(0)).map(lambda p: p[0][: p[1] % (len(p[0]) + 1)]),
        st.sampled_from([10, 100_000]).map(_nested_bytes),
        st.sampled_from([b"\xef\xbb\xbf{}", b"\x00{\x00}", b'{"v": 1, "kind": "decision"}']),
    )
)
@example(line=b'{"kind": "decision", "v": 1, "confidence": ' + b"1" * 400 + b"}")
@FUZZ
def test_any_spool_line_is_a_record_or_a_value_error(line: bytes) -> None:
    _read_or_refuse(line)


def test_a_spool_line_with_a_number_past_float_range_is_a_value_error() -> None:
    # A hand-edited or corrupted spool line: a number JSON reads as an int too big for a
    # float. The writer sets aside a line that raises ValueError; anything else stops it on
    # that line, retrying for ever, while every later decision waits behind it.
    record = IMPORT_DECISIONS[0]
    for name in ("confidence", "latency_ms"):
        _read_or_refuse(_edited(record, name, 10**400))
    _read_or_refuse(_edited(record, "scores", {"fraud": 10**400}))
