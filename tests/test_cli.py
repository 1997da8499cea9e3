import json
from pathlib import Path

import pytest

from triage.cli import main

from .conftest import TINY

FAST = ["--folds", "3", "--no-search", "--jobs", "1"]


def test_train_writes_a_version_and_promotes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    code = main(
        [
            "train",
            "--data",
            str(TINY),
            "--test",
            str(TINY),
            "--out",
            str(out),
            "--version",
            "first",
            "--promote",
            *FAST,
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "cross-validation (3-fold" in printed and "macro-F1" in printed
    assert "confusion matrix" in printed and "promoted first" in printed
    assert (out / "current").resolve() == (out / "first").resolve()
    # --if-missing: a current model exists, nothing is trained
    assert main(["train", "--data", str(TINY), "--out", str(out), "--if-missing"]) == 0
    assert "nothing to train" in capsys.readouterr().out


def test_evaluate_json_and_plots(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "eval.csv"
    csv_file.write_text(
        "text,label,source\n"
        '"Man filmed the guards at the embassy gate then drove off",terrorism_concern,web\n'
        '"Fake bank caller talked my dad into moving his savings",fraud,phone\n',
        "utf-8",
    )
    code = main(
        [
            "evaluate",
            "--model",
            str(models_dir / "current"),
            "--data",
            str(csv_file),
            "--format",
            "json",
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {
        "n",
        "labels",
        "macro_f1",
        "accuracy",
        "per_class",
        "confusion_matrix",
        "ece",
        "review_rate",
    } <= set(result)
    assert result["n"] == 2 and result["model_version"] == "v1"
    for name in ("confusion_matrix.png", "reliability.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_an_unknown_label_naming_the_row(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "ok", "label": "fraud"}\n{"text": "rain", "label": "weather"}\n')
    assert main(["evaluate", "--model", str(models_dir / "current"), "--data", str(data)]) == 1
    assert f"{data}: row 2: unknown label 'weather'" in capsys.readouterr().err


def test_train_refuses_a_label_with_too_few_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "few.jsonl"
    lines = TINY.read_text().splitlines()[:30]
    lines.append(json.dumps({"text": "flooded road", "label": "weather"}))
    data.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"{data}: label 'weather' has only 1 example(s) (rows 31)" in err
    assert not (tmp_path / "m").exists()


def test_classify_text_and_stdin(
    models_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = str(models_dir / "current")
    assert (
        main(
            [
                "classify",
                "--model",
                model,
                "--format",
                "json",
                "someone hacked my email account and changed the password",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == "cybercrime" and result["model_version"] == "v1"
    assert set(result["scores"]) == {"cybercrime", "fraud", "general", "terrorism_concern"}
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("   \n"))
    assert main(["classify", "--model", model, "-"]) == 1
    assert "the text is empty" in capsys.readouterr().err


def test_promote_command_and_a_refused_artifact(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "v1", "--models", str(models_dir)]) == 0
    assert "current -> v1" in capsys.readouterr().out
    (models_dir / "v1" / "model.joblib").write_bytes(b"evil")
    assert main(["classify", "--model", str(models_dir / "current"), "hello"]) == 1
    assert "refusing to load" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "triage", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "train" in done.stdout
