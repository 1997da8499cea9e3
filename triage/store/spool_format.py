"""The spool's line format: one decision (or shadow answer) per line of JSON, versioned, read
back field by field so that a damaged or hostile line is a ValueError saying what is wrong, never
anything else. Sealed texts travel sealed; nothing here ever holds a text in the clear."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _encode_ascii
from typing import Any

from triage.store.records import Decision, SealedText, ShadowDecision

Record = Decision | ShadowDecision
SPOOL_FORMAT = 1  # the "v" of every spool line; a line of another version is set aside


def spool_line(record: Record) -> str:
    """One record as a spool line: JSON on one line ending in a newline, ASCII only (so a line
    never holds a raw newline, whatever a field holds). Texts appear only sealed."""
    if type(record) is Decision and record.text is None:
        line = _plain_decision_line(record)
        if line is not None:
            return line
    return json.dumps(_fields_of(record), separators=(",", ":")) + "\n"


def _plain_decision_line(d: Decision) -> str | None:
    """The line of a decision without a text, written out directly: the same text as
    ``json.dumps`` of its fields (a test compares them), in a fraction of the time, on the
    request path. None when a field has a type the direct form does not write (a number that
    is not a float, say): the caller then takes the general path."""
    if type(d.needs_review) is not bool:
        return None
    q = json_string
    try:
        return (
            f'{{"kind":"decision","v":{SPOOL_FORMAT},"decision_id":{q(d.decision_id)},'
            f'"report_id":{q(d.report_id)},"received_at":"{_iso(d.received_at)}",'
            f'"model_version":{q(d.model_version)},"source":{q(d.source)},"label":{q(d.label)},'
            f'"confidence":{json_number(d.confidence)},'
            f'"scores":{{{",".join([f"{q(k)}:{json_number(v)}" for k, v in d.scores.items()])}}},'
            f'"needs_review":{_BOOLEANS[d.needs_review]},'
            f'"reasons":[{",".join([q(r) for r in d.reasons])}],"caller":{q(d.caller)},'
            f'"latency_ms":{"null" if d.latency_ms is None else json_number(d.latency_ms)},'
            '"text":null}\n'
        )
    except (TypeError, KeyError):  # not a str, a float or a bool where one belongs
        return None


_BOOLEANS = {True: "true", False: "false"}


def json_string(value: str) -> str:
    """A str as ``json.dumps`` writes it (ASCII only); TypeError for anything else."""
    if type(value) is not str:  # the encoder takes a str subclass as json.dumps would not
        raise TypeError("not a str")
    return _encode_ascii(value)


def json_number(value: float) -> str:
    """A float as ``json.dumps`` writes it (NaN and the infinities as JavaScript names them);
    TypeError for anything but a float."""
    if type(value) is not float:
        raise TypeError("not a float")
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def spool_lines(records: Sequence[Record]) -> bytes:
    """The spool lines of ``records``, one after the other, as the bytes appended."""
    return "".join([spool_line(r) for r in records]).encode("ascii")


def read_spool_line(line: bytes) -> Record:
    """The record a spool line holds; ValueError saying what is wrong with it otherwise."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than JSON can read
        raise ValueError("not a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    fields = _Fields(value)
    if value.get("v") != SPOOL_FORMAT:
        raise ValueError(f"spool format {value.get('v')!r}, this triage reads {SPOOL_FORMAT}")
    kind = value.get("kind")
    if kind == "decision":
        return Decision(
            decision_id=fields.text("decision_id"),
            report_id=fields.text("report_id"),
            received_at=fields.time("received_at"),
            model_version=fields.text("model_version"),
            source=fields.text("source"),
            label=fields.text("label"),
            confidence=fields.number("confidence"),
            scores=fields.scores("scores"),
            needs_review=fields.flag("needs_review"),
            reasons=fields.names("reasons"),
            caller=fields.text("caller"),
            latency_ms=fields.optional_number("latency_ms"),
            text=fields.sealed("text"),
        )
    if kind == "shadow":
        return ShadowDecision(
            decision_id=fields.text("decision_id"),
            model_version=fields.text("model_version"),
            scored_at=fields.time("scored_at"),
            label=fields.text("label"),
            confidence=fields.number("confidence"),
            scores=fields.scores("scores"),
            needs_review=fields.flag("needs_review"),
            reasons=fields.names("reasons"),
            latency_ms=fields.optional_number("latency_ms"),
        )
    raise ValueError(f"unknown kind {kind!r}: expected 'decision' or 'shadow'")


def _fields_of(record: Record) -> dict[str, Any]:
    if isinstance(record, Decision):
        text = record.text
        return {
            "kind": "decision",
            "v": SPOOL_FORMAT,
            "decision_id": record.decision_id,
            "report_id": record.report_id,
            "received_at": _iso(record.received_at),
            "model_version": record.model_version,
            "source": record.source,
            "label": record.label,
            "confidence": record.confidence,
            "scores": dict(record.scores),
            "needs_review": record.needs_review,
            "reasons": list(record.reasons),
            "caller": record.caller,
            "latency_ms": record.latency_ms,
            "text": None
            if text is None
            else {
                "ciphertext": base64.b64encode(text.ciphertext).decode("ascii"),
                "key_id": text.key_id,
                "expires_at": _iso(text.expires_at),
            },
        }
    return {
        "kind": "shadow",
        "v": SPOOL_FORMAT,
        "decision_id": record.decision_id,
        "model_version": record.model_version,
        "scored_at": _iso(record.scored_at),
        "label": record.label,
        "confidence": record.confidence,
        "scores": dict(record.scores),
        "needs_review": record.needs_review,
        "reasons": list(record.reasons),
        "latency_ms": record.latency_ms,
    }


def _iso(value: datetime) -> str:
    """ISO 8601 in UTC; a naive time is taken to be UTC already (as the store does)."""
    return (
        value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    ).isoformat()


def _float(name: str, value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # JSON reads 1e999 as inf, but 10**400 written out as an int
        raise ValueError(f"field {name!r} holds a number past the range of a float") from None


class _Fields:
    """Typed reads of a spool line's fields, each failing with the field's name."""

    def __init__(self, value: Mapping[str, Any]) -> None:
        self.value = value

    def _get(self, name: str, kinds: type | tuple[type, ...], what: str) -> Any:
        found = self.value.get(name)
        if not isinstance(found, kinds) or (isinstance(found, bool) and kinds is not bool):
            raise ValueError(f"field {name!r} is not {what}")  # True is an int to Python
        return found

    def text(self, name: str) -> str:
        return str(self._get(name, str, "a string"))

    def number(self, name: str) -> float:
        return _float(name, self._get(name, (int, float), "a number"))

    def optional_number(self, name: str) -> float | None:
        return None if self.value.get(name) is None else self.number(name)

    def flag(self, name: str) -> bool:
        return bool(self._get(name, bool, "true or false"))

    def time(self, name: str) -> datetime:
        try:
            value = datetime.fromisoformat(self.text(name))
        except ValueError:
            raise ValueError(f"field {name!r} is not an ISO 8601 time") from None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def scores(self, name: str) -> dict[str, float]:
        scores = self._get(name, dict, "an object of numbers")
        if not all(isinstance(p, int | float) and not isinstance(p, bool) for p in scores.values()):
            raise ValueError(f"field {name!r} is not an object of numbers")
        return {str(label): _float(name, p) for label, p in scores.items()}

    def names(self, name: str) -> tuple[str, ...]:
        names = self._get(name, list, "a list of strings")
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"field {name!r} is not a list of strings")
        return tuple(names)

    def sealed(self, name: str) -> SealedText | None:
        if self.value.get(name) is None:
            return None
        sealed = _Fields(self._get(name, dict, "an object"))
        try:
            ciphertext = base64.b64decode(sealed.text("ciphertext"), validate=True)
        except binascii.Error:
            raise ValueError(f"field {name!r}: the ciphertext is not base64") from None
        return SealedText(ciphertext, sealed.text("key_id"), sealed.time("expires_at"))
