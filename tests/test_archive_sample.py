"""Archive sampling (`triage review-sample`): a real `triage score` output of a small archive,
the most uncertain rows queued on a real decision record (SQLite and PostgreSQL) with their
texts, idempotently; bad rows and files named."""

from __future__ import annotations

import csv
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from triage.cli import main
from triage.review.accounts import Accounts, add_account
from triage.review.archive_sample import decision_id, file_sha256
from triage.review.web import Desk, create_app
from triage.store import schema
from triage.store.crypto import TextCipher, generate_key
from triage.store.database import Store
from triage.store.retention import read_text

TINY = Path(__file__).parent / "data" / "tiny.jsonl"


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, _models_template: Path) -> dict[str, Path]:
    """An archive of 20 reports (and one empty row that cannot be scored), scored by the tiny
    model into CSV, JSONL and Parquet outputs."""
    folder = tmp_path_factory.mktemp("archive")
    rows = [json.loads(line) for line in TINY.read_text(encoding="utf-8").splitlines()]
    archive = folder / "archive.csv"
    with archive.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label"])
        for i, row in enumerate(rows[::2][:20]):
            writer.writerow([f"case-{i:02d}", row["text"], row["label"]])
            if i == 3:
                writer.writerow(["case-empty", "", ""])  # refused by the scorer: not in the output
    outputs = {"archive": archive}
    for kind in ("csv", "jsonl", "parquet"):
        out = folder / f"scored.{kind}"
        code = main(
            [
                "score",
                str(archive),
                "--out",
                str(out),
                "--model",
                str(_models_template / "current"),
                "--workers",
                "1",
                "--quiet",
            ]
        )
        assert code == 0
        outputs[kind] = out
    return outputs


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "store.key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(generate_key() + b"\n")
    return path


def sample(
    store: Store, key_file: Path, scored: Path, archive: Path, *extra: str
) -> tuple[int, list[str]]:
    argv = ["review-sample", "--scored", str(scored), "--input", str(archive)]
    argv += ["--store", store.url, "--store-key-file", str(key_file), *extra]
    return main(argv), argv


def margins_by_hand(scored_csv: Path) -> list[tuple[float, int, dict[str, str]]]:
    """(margin, row, record) of every row of a CSV output, smallest margin first."""
    found = []
    with scored_csv.open(encoding="utf-8", newline="") as f:
        for row_no, record in enumerate(csv.DictReader(f), start=1):
            probabilities = sorted(
                (float(v) for k, v in record.items() if k.startswith("prob_")), reverse=True
            )
            found.append((probabilities[0] - probabilities[1], row_no, record))
    return sorted(found, key=lambda item: (item[0], item[1]))


def archive_texts(archive: Path) -> dict[str, str]:
    with archive.open(encoding="utf-8", newline="") as f:
        return {record["id"]: record["text"] for record in csv.DictReader(f)}


def sampled_rows(store: Store) -> list[dict[str, object]]:
    with store.connect() as connection:
        rows = connection.execute(
            select(schema.decisions).where(schema.decisions.c.source == "archive")
        ).all()
    return [dict(row._mapping) for row in rows]


def test_the_n_smallest_margins_are_queued_with_their_texts(
    store: Store, key_file: Path, scored: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    code, _ = sample(store, key_file, scored["csv"], scored["archive"], "--n", "5")
    assert code == 0, capsys.readouterr().err
    expected = margins_by_hand(scored["csv"])[:5]
    sha = file_sha256(scored["csv"])
    rows = {str(row["decision_id"]): row for row in sampled_rows(store)}
    assert set(rows) == {decision_id(sha, row_no) for _, row_no, _ in expected}

    cipher = TextCipher.from_keys([key_file.read_bytes().strip()])
    texts = archive_texts(scored["archive"])
    for _, row_no, record in expected:
        row = rows[decision_id(sha, row_no)]
        assert row["report_id"] == record["id"]
        assert row["label"] == record["label"]
        assert row["model_version"] == "v1" == record["model_version"]
        assert row["needs_review"] is True and row["reasons"] == "archive_sample"
        assert str(row["caller"]).startswith("triage review-sample")
        assert row["scores"] == {
            k[len("prob_") :]: float(v) for k, v in record.items() if k.startswith("prob_")
        }
        assert read_text(store, cipher, decision_id(sha, row_no)) == texts[record["id"]]
    with store.connect() as connection:
        expiries = connection.execute(select(schema.report_texts.c.expires_at)).scalars().all()
    assert len(expiries) == 5
    for expiry in expiries:
        at = expiry.replace(tzinfo=UTC) if expiry.tzinfo is None else expiry
        assert before + timedelta(days=30) <= at <= datetime.now(UTC) + timedelta(days=30)
    assert "5 new, 0 already on record" in capsys.readouterr().out


def test_sampling_again_adds_nothing_and_a_larger_n_only_the_rest(
    store: Store, key_file: Path, scored: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sample(store, key_file, scored["csv"], scored["archive"], "--n", "4")[0] == 0
    assert sample(store, key_file, scored["csv"], scored["archive"], "--n", "4")[0] == 0
    assert store.count("decisions") == 4 and store.count("report_texts") == 4
    assert sample(store, key_file, scored["csv"], scored["archive"], "--n", "6")[0] == 0
    assert store.count("decisions") == 6
    out = capsys.readouterr().out.splitlines()
    assert "4 new, 0 already on record" in out[0]
    assert "0 new, 4 already on record" in out[1]
    assert "2 new, 4 already on record" in out[2]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_jsonl_and_parquet_outputs_choose_the_same_rows(
    store: Store, key_file: Path, scored: dict[str, Path], kind: str
) -> None:
    assert sample(store, key_file, scored[kind], scored["archive"], "--n", "3")[0] == 0
    expected = [record["id"] for _, _, record in margins_by_hand(scored["csv"])[:3]]
    assert sorted(str(row["report_id"]) for row in sampled_rows(store)) == sorted(expected)


def test_a_bad_row_is_named_and_nothing_is_queued(
    store: Store,
    key_file: Path,
    scored: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = scored["csv"].read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    at = header.index("prob_fraud")
    third = lines[3].split(",")
    third[at] = "abc"
    lines[3] = ",".join(third)
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _ = sample(store, key_file, broken, scored["archive"], "--n", "50")
    err = capsys.readouterr().err
    assert code == 1
    assert f"{broken}: row 3: prob_fraud 'abc' is not a number" in err
    assert "Traceback" not in err
    assert store.count("decisions") == 0


def test_an_output_of_another_archive_names_the_first_row_not_found(
    store: Store,
    key_file: Path,
    scored: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "other.csv"
    other.write_text("id,text\nnot-a-case,some report text\n", encoding="utf-8")
    code, _ = sample(store, key_file, scored["csv"], other)
    err = capsys.readouterr().err
    assert code == 1
    assert f"{scored['csv']}: row 1: id 'case-00' is not in the input" in err
    assert "Traceback" not in err
    assert store.count("decisions") == 0


def test_a_file_that_is_not_a_score_output_is_named(
    store: Store,
    key_file: Path,
    scored: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = sample(store, key_file, scored["archive"], scored["archive"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{scored['archive']}: not a `triage score` output" in err
    assert "Traceback" not in err
    missing = scored["archive"].with_name("missing.csv")
    assert sample(store, key_file, scored["csv"], missing)[0] == 1
    assert sample(store, key_file, missing, scored["archive"])[0] == 1
    err = capsys.readouterr().err
    assert f"{missing}: no such file or folder" in err  # the input, as the archive reader says
    assert f"{missing}: no such file\n" in err  # the output
    assert "Traceback" not in err
    assert store.count("decisions") == 0


def test_without_a_key_nothing_is_queued(
    store: Store, scored: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["review-sample", "--scored", str(scored["csv"]), "--input", str(scored["archive"])]
    code = main([*argv, "--store", store.url], env={})
    assert code == 1
    assert "--store-key-file" in capsys.readouterr().err
    assert store.count("decisions") == 0


def test_the_sampled_rows_are_in_the_desk_s_queue(
    store: Store,
    key_file: Path,
    scored: dict[str, Path],
    models_dir: Path,
    tmp_path: Path,
) -> None:
    assert sample(store, key_file, scored["csv"], scored["archive"], "--n", "3")[0] == 0
    accounts = tmp_path / "accounts"
    add_account(accounts, "ana", "reviewer", "correct horse battery")
    cipher = TextCipher.from_keys([key_file.read_bytes().strip()])
    desk = Desk(store=store, models_dir=models_dir, accounts=Accounts.load(accounts), cipher=cipher)
    with TestClient(create_app(desk), follow_redirects=False) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        form = {"name": "ana", "password": "correct horse battery", "csrf": token.group(1)}
        assert client.post("/login", data=form).status_code == 303
        queue = client.get("/queue")
    assert queue.status_code == 200
    sha = file_sha256(scored["csv"])
    for _, row_no, _ in margins_by_hand(scored["csv"])[:3]:
        assert f"/item/{decision_id(sha, row_no)}" in queue.text
