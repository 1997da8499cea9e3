import json
from pathlib import Path

import pytest

from triage.core.errors import DataFileError
from triage.training.corpus import read_labelled


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_reads_jsonl_and_csv_alike(tmp_path: Path) -> None:
    j = _jsonl(tmp_path / "a.jsonl", [{"id": "x1", "text": "hello\u2028there", "label": "fraud"}])
    c = tmp_path / "a.csv"
    c.write_text(
        '\ufeffid,text,label,genre\nx1,"hello, ""there""\nagain",fraud,short_note\n', "utf-8"
    )
    (jrow,) = read_labelled(j).rows
    (crow,) = read_labelled(c).rows
    assert (jrow.id, jrow.text, jrow.label) == ("x1", "hello\u2028there", "fraud")
    assert (crow.text, crow.genre) == ('hello, "there"\nagain', "short_note")
    assert len(read_labelled(j).sha256) == 64


def test_missing_csv_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,body,label\n1,text,fraud\n", "utf-8")
    with pytest.raises(
        DataFileError, match=r"bad\.csv: missing column 'text' \(header has: id, body, label\)"
    ):
        read_labelled(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "  ", "label": "fraud"}, "row 2: empty text"),
        ({"text": "fine"}, "row 2: missing field 'label'"),
        ({"text": 5, "label": "fraud"}, "row 2: 'text' must be a string"),
        ({"text": "fine", "label": "weather"}, "row 2: unknown label 'weather'"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path: Path, row: dict[str, object], message: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "good", "label": "fraud"}, row])
    with pytest.raises(DataFileError) as caught:
        read_labelled(path, known_labels={"fraud", "general"})
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "fraud"}\n{"text": "caf\xe9", "label": "fraud"}\n')
    with pytest.raises(DataFileError, match=r"not valid UTF-8 \(byte 0xe9 on line 2\)"):
        read_labelled(path)


def test_broken_json_and_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "fraud"}\n{"text": \n', "utf-8")
    with pytest.raises(DataFileError, match="row 2: not valid JSON"):
        read_labelled(path)
    other = tmp_path / "d.xlsx"
    other.write_bytes(b"PK")
    with pytest.raises(DataFileError, match=r"unknown format '\.xlsx'"):
        read_labelled(other)
    with pytest.raises(DataFileError, match="cannot read"):
        read_labelled(tmp_path / "absent.csv")
