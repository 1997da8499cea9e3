"""Fuzzing the archive readers: whatever a CSV, JSONL, .gz, .txt or Parquet file holds, reading it
raises nothing but DataFileError, accounts for every row the format defines, and is quick."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.archive.readers import MAX_ID_CHARS, ArchiveSpec, count_rows, read_archive
from triage.archive.rows import ArchiveRow
from triage.cli import main
from triage.core.errors import DataFileError

# Every input here is a few KiB: reading one takes milliseconds. The bound is far above that
# (the machine running the tests is shared) and far below what a quadratic reader would take.
SECONDS_PER_INPUT = 2.0
# Derandomized, like the gRPC fuzz suite: CI runs the same examples every time, so a failure
# is never a matter of luck (run with --hypothesis-seed=N to explore further).
FUZZ = settings(
    max_examples=150,
    deadline=SECONDS_PER_INPUT * 1_000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Module-scoped: Hypothesis runs many examples per test, each writing its files here.
    return tmp_path_factory.mktemp("fuzz-archive")


def _read(path: Path) -> list[ArchiveRow] | None:
    """Every row of ``path``, or None if it is refused as a whole (with a DataFileError naming
    it: anything else raised fails the test). Checks the bound on time and the rules every
    row follows."""
    spec = ArchiveSpec((str(path),))
    started = time.perf_counter()
    try:
        rows: list[ArchiveRow] | None = list(read_archive(spec))
    except DataFileError as err:
        assert err.path == str(path)
        rows = None
    try:
        counted: int | None = count_rows(spec)
    except DataFileError:
        counted = None
    assert time.perf_counter() - started < SECONDS_PER_INPUT
    if rows is None:
        return None
    assert counted == len(rows)  # the progress total is what is read
    for row in rows:
        assert isinstance(row.id, str) and 0 < len(row.id) <= MAX_ID_CHARS
        row.id.encode("utf-8")  # every id can be written out
        if row.problem is None:
            row.text.encode("utf-8")
        else:
            assert row.text == ""
    return rows


def _physical_lines(data: bytes) -> list[str]:
    """The lines CSV is read in: UTF-8 (a BOM dropped), ended by \\n, \\r or \\r\\n."""
    stream = io.TextIOWrapper(
        io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    return stream.readlines()


def _assert_no_row_skipped(rows: list[ArchiveRow], data: bytes) -> None:
    """Rows start on increasing lines, numbered 1, 2, ...; after a malformed record the next
    row starts on the next line that is not blank: nothing after it goes unread."""
    blank = {i for i, line in enumerate(_physical_lines(data), start=1) if line in CSV_BLANK}
    last = len(_physical_lines(data))
    assert [r.row for r in rows] == list(range(1, len(rows) + 1))
    lines = [r.line or 0 for r in rows]
    assert all(n > 0 for n in lines) and lines == sorted(set(lines))
    ends = [*lines[1:], last + 1][: len(rows)]  # where the next row starts
    for row, start, after in zip(rows, lines, ends, strict=True):
        if row.problem is not None and row.problem.startswith("malformed CSV record"):
            skipped = set(range(start + 1, after)) - blank
            assert not skipped, (row, skipped)


CSV_BLANK = {"\n", "\r", "\r\n"}

# Pieces CSV quoting goes wrong with, so that random files are mostly nearly valid.
_CSV_PIECES = st.sampled_from(
    ['"', '""', ",", "\n", "\r\n", "\r", "a", "b c", " ", "id", "\x00", "é", "\ufeff", '",', ',"']
)
csv_like = st.lists(_CSV_PIECES, max_size=60).map(lambda p: ("id,text\n" + "".join(p)).encode())
csv_bytes = st.binary(max_size=600).map(lambda b: b"id,text\n" + b)


@FUZZ
@given(st.one_of(csv_like, csv_bytes), st.booleans())
def test_any_csv_is_read_without_losing_a_row(work: Path, data: bytes, zipped: bool) -> None:
    path = work / ("any.csv.gz" if zipped else "any.csv")
    path.write_bytes(gzip.compress(data) if zipped else data)
    rows = _read(path)
    assert rows is not None  # the header is fine: the file as a whole is readable
    _assert_no_row_skipped(rows, data)


# Layouts where a reader that re-reads the lines of each malformed record would take time
# quadratic in the file: each line opens a quote that the next lines keep open, or close badly.
_ADVERSARIAL_LINES = ['a",x,"y\n', 'r,"a\n', '"\n', 'r,"a""\n', 'r,"a\nb",c\n', '",\n']


@pytest.mark.parametrize("line", _ADVERSARIAL_LINES)
def test_adversarial_csv_is_read_in_linear_time(work: Path, line: str) -> None:
    # 20,000 lines take about 0.1 s (10 us a line at most); re-reading every malformed
    # record's lines would be 200 million line reads.
    path = work / "adversarial.csv"
    path.write_text("id,text\n" + line * 20_000, "utf-8")
    started = time.perf_counter()
    rows = list(read_archive(ArchiveSpec((str(path),))))
    assert time.perf_counter() - started < 20_000 * 100e-6
    assert rows[-1].line is not None and rows[-1].line >= 20_000  # read to the end


ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
any_text = st.text(max_size=40)  # any character but a surrogate: commas, quotes, line breaks


def _write_rows(
    rows: list[tuple[str, str]],
    terminator: str,
    damaged: int | None = None,
    quoting: int = csv.QUOTE_MINIMAL,
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator, quoting=quoting)
    writer.writerow(["id", "text"])
    for i, (report_id, text) in enumerate(rows):
        if i == damaged:
            out.write(f'{report_id},"{text}{terminator}')  # a quote left open
        else:
            writer.writerow([report_id, text])
    return out.getvalue().encode("utf-8")


@FUZZ
@given(
    st.lists(st.tuples(ids, any_text), max_size=12, unique_by=lambda r: r[0]),
    # Python 3.11's writer leaves a lone \r unquoted unless the line end holds one, and then
    # writes a file that is not the rows it was given: "\n" ends go with quoting everything.
    st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL), ("\n", csv.QUOTE_ALL)]),
)
def test_valid_csv_reads_back_exactly(
    work: Path, rows: list[tuple[str, str]], dialect: tuple[str, int]
) -> None:
    path = work / "valid.csv"
    path.write_bytes(_write_rows(rows, dialect[0], quoting=dialect[1]))
    got = _read(path)
    assert got is not None
    assert [(r.id, r.text, r.problem) for r in got] == [(i, t, None) for i, t in rows]


# Texts without quotes or line breaks: then an unclosed quote can never end as a valid record
# (with them it can, and that is legal CSV: a quoted field may hold line breaks and commas).
plain_text = st.text(st.characters(exclude_characters='"\r\n', codec="utf-8"), max_size=30)


@FUZZ
@given(
    st.lists(st.tuples(ids, plain_text), min_size=1, max_size=12, unique_by=lambda r: r[0]),
    st.data(),
)
def test_an_unclosed_quote_costs_only_its_own_row(
    work: Path, rows: list[tuple[str, str]], data: st.DataObject
) -> None:
    damaged = data.draw(st.integers(0, len(rows) - 1))
    path = work / "damaged.csv"
    path.write_bytes(_write_rows(rows, data.draw(st.sampled_from(["\n", "\r\n"])), damaged))
    got = _read(path)
    assert got is not None
    assert [r.id for r in got] == [i for i, _ in rows]
    for i, (row, (_, text)) in enumerate(zip(got, rows, strict=True)):
        if i == damaged:
            assert row.problem is not None and "unclosed quote" in row.problem, row
        else:
            assert (row.text, row.problem) == (text, None)


# JSON values of every kind, for ids and texts: lone surrogates and huge numbers included.
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**320),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=2),
    st.just("x" * (MAX_ID_CHARS + 1)),
)
json_values = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def _expected_id(value: object, line: int) -> str | None:
    """The id a JSONL ``id`` value gives (None: the row is an error)."""
    if value is None or value == "":
        return str(line)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    report_id = str(value)
    ok = len(report_id) <= MAX_ID_CHARS and not any(0xD800 <= ord(c) <= 0xDFFF for c in report_id)
    return report_id if ok else None


@FUZZ
@given(st.lists(st.tuples(json_values, json_values), max_size=8))
def test_any_json_ids_and_texts_give_one_row_per_line(
    work: Path, records: list[tuple[object, object]]
) -> None:
    path = work / "values.jsonl"
    lines = [json.dumps({"id": i, "text": t}) for i, t in records]
    path.write_text("".join(line + "\n" for line in lines), "ascii")
    got = _read(path)
    assert got is not None and len(got) == len(records)
    for n, (row, line) in enumerate(zip(got, lines, strict=True), start=1):
        assert (row.row, row.line) == (n, n)
        # As JSON reads them back: "\ud800\udc00" is one character, not two surrogates.
        raw_id, text = json.loads(line)["id"], json.loads(line)["text"]
        expected = _expected_id(raw_id, n)
        good_text = isinstance(text, str) and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        if expected is None or not good_text:
            assert row.problem is not None
        else:
            assert (row.id, row.text, row.problem) == (expected, text, None)


jsonl_like = st.lists(
    st.sampled_from(['{"id": 1, "text": "a"}', "{", "}", '"', "\n", "\r\n", " ", "[]", "null"])
    | st.text(max_size=8),
    max_size=30,
).map(lambda p: "".join(p).encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(st.one_of(st.binary(max_size=600), jsonl_like), st.booleans())
def test_any_jsonl_gives_one_row_per_line_that_is_not_blank(
    work: Path, data: bytes, zipped: bool
) -> None:
    path = work / ("any.jsonl.gz" if zipped else "any.jsonl")
    path.write_bytes(gzip.compress(data) if zipped else data)
    got = _read(path)
    assert got is not None
    not_blank = [n for n, line in enumerate(data.split(b"\n"), start=1) if line.strip()]
    assert [r.line for r in got] == not_blank


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["a.csv.gz", "a.jsonl.gz", "a.txt.gz"]))
def test_any_bytes_as_gzip_are_rows_or_a_message(work: Path, data: bytes, name: str) -> None:
    path = work / name
    path.write_bytes(data)
    _read(path)


@FUZZ
@given(st.lists(st.tuples(ids, any_text), max_size=30), st.data())
def test_a_cut_gzip_stream_is_a_message_not_a_traceback(
    work: Path, rows: list[tuple[str, str]], data: st.DataObject
) -> None:
    whole = gzip.compress(_write_rows(rows, "\r\n"))
    cut = data.draw(st.integers(0, len(whole)))
    path = work / "cut.csv.gz"
    path.write_bytes(whole[:cut])
    got = _read(path)
    if cut == len(whole):
        assert got is not None and [r.id for r in got] == [i for i, _ in rows]
    elif cut == 0:
        assert got == []  # an empty file: no rows, whatever its name
    else:
        assert got is None  # never a silently shorter archive


@FUZZ
@given(st.binary(max_size=300))
def test_any_txt_file_is_one_row(work: Path, data: bytes) -> None:
    path = work / "report.txt"
    path.write_bytes(data)
    got = _read(path)
    assert got is not None and len(got) == 1
    try:
        text: str | None = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    assert (got[0].id, got[0].text if text is not None else None) == ("report.txt", text)
    assert (got[0].problem is None) == (text is not None)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


_VALID_PARQUET = _parquet(pa.table({"id": ["a", "b", "c"], "text": ["x", "y", None]}))


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.data()))
def test_any_bytes_as_parquet_are_rows_or_a_message(
    work: Path, content: bytes | st.DataObject
) -> None:
    if isinstance(content, st.DataObject):  # a valid file with a stretch overwritten
        at = content.draw(st.integers(0, len(_VALID_PARQUET) - 1))
        junk = content.draw(st.binary(min_size=1, max_size=64))
        content = (_VALID_PARQUET[:at] + junk + _VALID_PARQUET[at + len(junk) :])[
            : len(_VALID_PARQUET)
        ]
    path = work / "any.parquet"
    path.write_bytes(content)
    _read(path)


_ID_COLUMNS = st.sampled_from(
    [
        pa.array([1, None, 3], pa.int64()),
        pa.array([1.0, 2.5, None], pa.float64()),
        pa.array([True, False, None]),
        pa.array([b"a", b"\xff", None], pa.binary()),
        pa.array([[1], [], None], pa.list_(pa.int64())),
        pa.array(["a", "\u00e9" * (MAX_ID_CHARS + 1), ""]),
        pa.array([None, None, None], pa.null()),
        pa.array([0, 1, 2], pa.timestamp("s")),
    ]
)


@settings(FUZZ, max_examples=30)
@given(_ID_COLUMNS, st.sampled_from([["x", "y", None], [1, 2, 3]]))
def test_parquet_ids_of_any_type_give_one_row_each(
    work: Path, id_column: pa.Array, texts: list[object]
) -> None:
    path = work / "typed.parquet"
    path.write_bytes(_parquet(pa.table({"id": id_column, "text": texts})))
    got = _read(path)
    assert got is not None and [r.row for r in got] == [1, 2, 3]
    for row, raw_id in zip(got, id_column.to_pylist(), strict=True):
        if row.problem is None:
            assert row.id == _expected_id(raw_id, row.row)


# ---------------------------------------------------------------------------------------------
# The whole command: never a traceback; every row is in the output or the errors file.


def _scored(out: Path) -> int:
    return len(out.read_text("utf-8").splitlines()) if out.exists() else 0


@pytest.fixture(scope="module")
def model(_models_template: Path) -> Path:
    return _models_template / "current"


@settings(FUZZ, max_examples=40, deadline=None)
@given(st.one_of(csv_like, csv_bytes, jsonl_like), st.sampled_from(["in.csv", "in.jsonl"]))
def test_triage_score_accounts_for_every_row_of_any_file(
    work: Path, model: Path, data: bytes, name: str
) -> None:
    source, out = work / name, work / "scored.jsonl"
    source.write_bytes(data)
    spec = ArchiveSpec((str(source),))
    try:
        expected: int | None = count_rows(spec)
    except DataFileError:
        expected = None
    started = time.perf_counter()
    command = ["score", str(source), "--out", str(out), "--model", str(model)]
    code = main([*command, "--quiet", "--overwrite", "--workers", "1"])
    assert time.perf_counter() - started < 30
    if expected is None:
        assert code == 1
        return
    assert code == 0
    errors = work / "scored.jsonl.errors.jsonl"
    assert _scored(out) + _scored(errors) == expected
    for line in out.read_text("utf-8").splitlines():
        assert json.loads(line)["id"]
    errors.unlink(missing_ok=True)
