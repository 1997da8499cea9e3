"""The journal writer's short way from a spool line to a row stores what the general way
(a Decision read back, then Store.insert_decisions) stores, field for field, on both backends;
and every line it does not take is left to the general reader."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from triage.core.model import Prediction
from triage.store.database import Store, open_store
from triage.store.records import Decision, SealedText, utc_now
from triage.store.spool_format import read_spool_line, spool_line
from triage.store.spool_rows import insert_rows, plain_decision_row

PREDICTION = Prediction(
    label="fraud",
    confidence=0.9,
    scores=(("fraud", 0.9), ("general", 0.07), ("cybercrime", 0.03)),
    needs_review=False,
    top_terms=(),
    model_version="20261201-000000",
)


@pytest.fixture
def stores(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _varied(sqlite_form: bool) -> list[Decision]:
    base = Decision.of(
        PREDICTION, report_id="r1", source="Classify", latency_ms=2.5, decision_id="d-base"
    )
    east = timezone(timedelta(hours=5, minutes=30))
    return [
        base,
        replace(base, decision_id="d-nul", report_id='a\x00b\u2028"q\\', caller="CN=é\x00"),
        replace(base, decision_id="d-review", needs_review=True, reasons=("LOW_MARGIN", "OOV")),
        replace(base, decision_id="d-east", received_at=datetime(2026, 3, 1, 9, 0, tzinfo=east)),
        replace(base, decision_id="d-naive", received_at=datetime(2026, 3, 1, 9, 0, 0, 1)),
        replace(base, decision_id="d-one", scores={"fraud\x00": 1.0}, latency_ms=None),
        replace(base, decision_id="d-none", scores={}, confidence=0.0),
        replace(base, decision_id="d-tie", scores={"a": 0.5, "b": 0.5}, confidence=1e-300),
    ] + (  # PostgreSQL's JSON has no NaN: refused either way (and set aside by the journal)
        [replace(base, decision_id="d-nan", scores={"a": math.nan, "b": 0.5, "c": 0.25})]
        if sqlite_form
        else []
    )


def test_the_short_way_stores_what_the_general_way_stores(stores: Store) -> None:
    sqlite_form = stores.dialect == "sqlite"
    decisions = _varied(sqlite_form)
    rows = []
    for decision in decisions:
        value = json.loads(spool_line(decision))
        row = plain_decision_row(value, sqlite_form)
        assert row is not None, decision.decision_id
        rows.append(row)
    insert_rows(stores, rows)
    insert_rows(stores, rows)  # idempotent, as a replay is
    general = [
        replace(read_spool_line(spool_line(d).encode()), decision_id=f"g-{d.decision_id}"[:36])
        for d in decisions
    ]
    stores.insert_decisions(general, count=False)
    assert stores.count("decisions") == 2 * len(decisions)
    for decision in decisions:
        short = stores.decision(decision.decision_id)
        long = stores.decision(f"g-{decision.decision_id}"[:36])
        assert short is not None and long is not None
        assert replace(short.decision, decision_id="x") == replace(long.decision, decision_id="x")
    with stores.connect() as connection:
        margins = dict(
            connection.exec_driver_sql("SELECT decision_id, margin FROM decisions").all()
        )
    for decision in decisions:
        short, long = margins[decision.decision_id], margins[f"g-{decision.decision_id}"[:36]]
        assert short == long or (math.isnan(short) and math.isnan(long)), decision.decision_id


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"kind": "shadow"},
        {"confidence": 1},  # an int: the general reader converts it
        {"confidence": True},
        {"scores": {"a": 1}},
        {"scores": [0.5]},
        {"reasons": "LOW_MARGIN"},
        {"reasons": [1]},
        {"needs_review": 1},
        {"latency_ms": "1"},
        {"report_id": None},
        {"caller": 7},
        {"received_at": "yesterday"},
        {"received_at": 17},
    ],
)
def test_any_other_line_is_left_to_the_general_reader(change: dict[str, object]) -> None:
    line = json.loads(spool_line(Decision.of(PREDICTION, report_id="r", source="Classify")))
    assert plain_decision_row(line, True) is not None
    assert plain_decision_row({**line, **change}, True) is None
    for missing in ("decision_id", "scores", "received_at", "needs_review"):
        assert plain_decision_row({k: v for k, v in line.items() if k != missing}, True) is None
    assert plain_decision_row([line], True) is None


def test_a_decision_with_a_sealed_text_takes_the_general_way() -> None:
    sealed = SealedText(b"token", "k1", utc_now())
    decision = Decision.of(PREDICTION, report_id="r", source="Classify", text=sealed)
    assert plain_decision_row(json.loads(spool_line(decision)), False) is None


class _Text(str):
    pass


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"report_id": 'a\x00b\u2028"q\\\n', "caller": "CN=é", "reasons": ("A", "B\n")},
        {"scores": {"x": math.nan, "y": math.inf, "z": -math.inf, "w": 1e-300}},
        {"latency_ms": None, "scores": {}},
        {"received_at": datetime(2026, 3, 1, 9, 0)},  # naive: taken as UTC
        {"confidence": 1},  # an int, written as an int: the general path
        {"needs_review": 1},
        {"scores": {"a": 1}},
        {"report_id": _Text("sub")},
        {"scores": {7: 0.5}},
    ],
)
def test_the_direct_spool_line_is_the_json_one(change: dict[str, object]) -> None:
    from triage.store.spool_format import _fields_of

    decision = replace(Decision.of(PREDICTION, report_id="r", source="Classify"), **change)  # type: ignore[arg-type]
    expected = json.dumps(_fields_of(decision), separators=(",", ":")) + "\n"
    assert spool_line(decision) == expected
