"""Read a decoded JSON object field by field, naming any missing or mistyped field by its path."""

from __future__ import annotations

from triage.core.errors import InvalidRecord

Scalar = str | int | float | bool | None
_MAX_SHOWN = 40


class JsonFields:
    """One decoded JSON object; every getter checks the type of the field it returns."""

    def __init__(self, value: object, path: str = "") -> None:
        if not isinstance(value, dict):
            raise InvalidRecord(path or "(the document)", _wrong("a JSON object", value))
        self._value: dict[str, object] = value
        self._path = path

    def names(self) -> list[str]:
        """The object's keys, in document order (a reader ignores the ones it does not know)."""
        return list(self._value)

    def text(self, key: str) -> str:
        where, value = self._field(key)
        return _text(where, value)

    def integer(self, key: str) -> int:
        where, value = self._field(key)
        return _integer(where, value)

    def number(self, key: str) -> float:
        where, value = self._field(key)
        return _number(where, value)

    def optional_number(self, key: str) -> float | None:
        where, value = self._field(key)
        return None if value is None else _number(where, value)

    def child(self, key: str) -> JsonFields:
        """The JSON object at ``key``."""
        where, value = self._field(key)
        return JsonFields(value, where)

    def optional_child(self, key: str) -> JsonFields | None:
        where, value = self._field(key)
        return None if value is None else JsonFields(value, where)

    def children(self, key: str) -> list[JsonFields]:
        """The list of JSON objects at ``key``."""
        where, value = self._field(key)
        return [JsonFields(item, f"{where}[{i}]") for i, item in enumerate(_list(where, value))]

    def texts(self, key: str) -> tuple[str, ...]:
        where, value = self._field(key)
        return tuple(_text(f"{where}[{i}]", item) for i, item in enumerate(_list(where, value)))

    def integer_rows(self, key: str) -> tuple[tuple[int, ...], ...]:
        """A list of lists of integers, such as a confusion matrix."""
        where, value = self._field(key)
        rows = []
        for i, row in enumerate(_list(where, value)):
            at = f"{where}[{i}]"
            rows.append(
                tuple(_integer(f"{at}[{j}]", cell) for j, cell in enumerate(_list(at, row)))
            )
        return tuple(rows)

    def text_map(self, key: str) -> dict[str, str]:
        fields = self.child(key)
        return {name: fields.text(name) for name in fields.names()}

    def count_map(self, key: str) -> dict[str, int]:
        fields = self.child(key)
        return {name: fields.integer(name) for name in fields.names()}

    def scalar_map(self, key: str) -> dict[str, Scalar]:
        fields = self.child(key)
        return {name: fields._scalar(name) for name in fields.names()}

    def _scalar(self, key: str) -> Scalar:
        where, value = self._field(key)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise InvalidRecord(where, _wrong("a string, number, boolean or null", value))

    def _field(self, key: str) -> tuple[str, object]:
        where = f"{self._path}.{key}" if self._path else key
        if key not in self._value:
            raise InvalidRecord(where, "is missing")
        return where, self._value[key]


def _text(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRecord(where, _wrong("a string", value))
    return value


def _integer(where: str, value: object) -> int:
    # JSON has no booleans-as-numbers; Python's bool is an int, so it is refused by name.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(where, _wrong("an integer", value))
    return value


def _number(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(where, _wrong("a number", value))
    return float(value)


def _list(where: str, value: object) -> list[object]:
    if not isinstance(value, list):
        raise InvalidRecord(where, _wrong("a list", value))
    return value


def _wrong(expected: str, value: object) -> str:
    shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return f"must be {expected}, not {type(value).__name__} {shown}"
