import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.cli import main, parse_arguments
from triage.cli.cpus import usable_cpus
from triage.cli.options import ConfigError
from triage.cli.serve_command import serve_config
from triage.core.artifacts import MODEL_FILE
from triage.rpc.app import ServeConfig
from triage.rpc.security import TlsConfig
from triage.runtime.microbatch import BatchingConfig
from triage.runtime.recording import RecordConfig
from triage.runtime.service import Limits

from .conftest import REPO, TINY

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
            # 48 short notes are too few to be fair to every identity swap; the gate itself is
            # tested in tests/test_fairness.py.
            "--allow-fairness-flips",
            "1000",
            "--fairness-max-spread",
            "1",
            "--fairness-min-raise",
            "-1",
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
    (models_dir / "v1" / MODEL_FILE).write_bytes(b"evil")
    assert main(["classify", "--model", str(models_dir / "current"), "hello"]) == 1
    assert "refusing to load" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "triage", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "train" in done.stdout


# --- options: flags, TRIAGE_* variables and their errors -------------------------------------

SERVE_README = (REPO / "README.md").read_text(encoding="utf-8").split("## Running the service")[1]
SERVE_README = SERVE_README.split("### Deployment")[0]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TRIAGE_PORT", "abc", "is not an integer"),
        ("TRIAGE_PORT", "70000", "expected an integer from 0 to 65535"),
        ("TRIAGE_WORKERS", "-1", "expected an integer >= 0"),
        ("TRIAGE_MAX_IN_FLIGHT", "0", "expected an integer >= 1"),
        ("TRIAGE_BATCH_MAX_WAIT_MS", "x", "is not a number"),
        ("TRIAGE_BATCH_MAX_SIZE", "1.5", "is not an integer"),
        ("TRIAGE_GRACE_SECONDS", "nan", "is not a finite number"),
        ("TRIAGE_DRAIN_SECONDS", "-3", "expected a number >= 0"),
        ("TRIAGE_MAX_MESSAGE_MB", "4096", "expected an integer from 1 to 2047"),
        ("TRIAGE_METRICS_PORT", "http", "is not an integer"),
        ("TRIAGE_QUIET_LANE", "maybe", "is not on or off"),
        ("TRIAGE_INSECURE", "sure", "is not on or off"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it_and_exit_2(
    variable: str, value: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A missing model makes a wrongly accepted value fail with 1 instead of serving forever.
    code = main(["serve", "--model", str(tmp_path / "absent")], {variable: value})
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"triage: error: {variable}={value!r} ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_variable_from_the_real_environment_exits_2_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "triage", "serve"],
        env={**os.environ, "TRIAGE_PORT": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "triage: error: TRIAGE_PORT='abc' is not an integer\n"


@pytest.mark.parametrize(
    ("argv", "flag", "expected"),
    [
        (["serve", "--port", "70000"], "--port", "'70000' is out of range"),
        (["serve", "--workers", "many"], "--workers", "'many' is not an integer"),
        (["serve", "--batch-max-wait-ms", "inf"], "--batch-max-wait-ms", "not a finite number"),
        (["score", "in.csv", "--out", "o.csv", "--chunk-size", "0"], "--chunk-size", ">= 1"),
        (["train", "--target-precision", "0"], "--target-precision", "above 0"),
    ],
)
def test_a_bad_flag_names_the_flag_and_value_and_exits_2(
    argv: list[str], flag: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, {}) == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err and expected in err and "Traceback" not in err


def test_a_flag_wins_over_its_variable_even_a_bad_one() -> None:
    env = {"TRIAGE_PORT": "abc", "TRIAGE_HOST": "::1", "TRIAGE_INSECURE": "0"}
    config = serve_config(parse_arguments(["serve", "--port", "7000", "--insecure"], env))
    assert (config.port, config.host, config.insecure) == (7000, "::1", True)
    config = serve_config(parse_arguments(["serve", "--no-batching"], {"TRIAGE_BATCHING": "on"}))
    assert config.batching is None


def test_the_environment_reaches_the_server_config(tmp_path: Path) -> None:
    env = {
        "TRIAGE_HOST": "0.0.0.0",
        "TRIAGE_PORT": "6001",
        "TRIAGE_MODEL": str(tmp_path / "m"),
        "TRIAGE_WORKERS": "3",
        "TRIAGE_QUIET_LANE": "off",
        "TRIAGE_BATCH_MAX_SIZE": "16",
        "TRIAGE_BATCH_MAX_WAIT_MS": "2.5",
        "TRIAGE_MAX_IN_FLIGHT": "9",
        "TRIAGE_MAX_TEXT_CHARS": "500",
        "TRIAGE_MAX_BATCH": "20",
        "TRIAGE_MAX_MESSAGE_MB": "2",
        "TRIAGE_INSECURE": "1",
        "TRIAGE_TOKENS": " tok1, tok2,,",
        "TRIAGE_METRICS_PORT": "9100",
        "TRIAGE_METRICS_HOST": "0.0.0.0",
        "TRIAGE_GRACE_SECONDS": "4",
        "TRIAGE_DRAIN_SECONDS": "1.5",
        "TRIAGE_WATCH_SECONDS": "0",
        "TRIAGE_PUBLIC": "ignored: not ours",
        "TRIAGE_STORE": "postgresql+psycopg://triage@db.internal/record",
        "TRIAGE_SPOOL": str(tmp_path / "spool"),
        "TRIAGE_PURGE_SECONDS": "60",
        "TRIAGE_SHADOW": str(tmp_path / "candidate"),
        "TRIAGE_SHADOW_SHARE": "0.25",
        "TRIAGE_REVIEWER_TOKENS": "alice tok3",
    }
    assert serve_config(parse_arguments(["serve"], env)) == ServeConfig(
        model_path=tmp_path / "m",
        host="0.0.0.0",
        port=6001,
        workers=3,
        quiet_lane=False,
        batching=BatchingConfig(max_batch=16, max_wait_seconds=0.0025),
        max_in_flight=9,
        limits=Limits(max_text_chars=500, max_batch_size=20, max_message_bytes=2 * 1024 * 1024),
        grace_seconds=4.0,
        drain_seconds=1.5,
        watch_seconds=0.0,
        tls=None,
        insecure=True,
        tokens=("tok1", "tok2"),
        reviewer_tokens=("alice tok3",),
        metrics_port=9100,
        metrics_host="0.0.0.0",
        record=RecordConfig(
            store_url="postgresql+psycopg://triage@db.internal/record",
            spool_dir=tmp_path / "spool",
            purge_seconds=60.0,
            shadow_model=tmp_path / "candidate",
            shadow_share=0.25,
        ),
    )
    assert serve_config(parse_arguments(["serve"], {"TRIAGE_RECORD": "off"})).record is None
    tls_env = {"TRIAGE_TLS_CERT": "c.pem", "TRIAGE_TLS_KEY": "k.pem", "TRIAGE_BATCHING": "off"}
    config = serve_config(parse_arguments(["serve"], tls_env))
    assert config.tls == TlsConfig(Path("c.pem"), Path("k.pem"), None)
    assert config.batching is None


def test_without_flags_or_variables_serve_keeps_the_documented_defaults() -> None:
    empty_is_unset = {"TRIAGE_PORT": "", "TRIAGE_MODEL": ""}
    assert serve_config(parse_arguments(["serve"], empty_is_unset)) == ServeConfig(
        model_path=Path("models/current"),
        host="127.0.0.1",
        port=50051,
        workers=usable_cpus(),
        quiet_lane=True,
        batching=BatchingConfig(max_batch=64, max_wait_seconds=0.0),
        max_in_flight=256,
        limits=Limits(max_text_chars=100_000, max_batch_size=1000, max_message_bytes=16 << 20),
        grace_seconds=10.0,
        drain_seconds=0.0,
        watch_seconds=2.0,
        metrics_port=None,
        metrics_host="127.0.0.1",
        record=RecordConfig(store_url="sqlite:///data/triage.db", spool_dir=Path("data/spool")),
    )


def test_an_access_log_that_cannot_be_opened_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing-dir" / "access.log"
    code = main(["serve", "--model", str(tmp_path / "absent"), "--access-log", str(target)], {})
    assert code == 1
    assert f"triage: error: cannot open access log {target}" in capsys.readouterr().err


def test_a_variable_of_another_command_is_not_read() -> None:
    args = parse_arguments(["promote", "v1"], {"TRIAGE_PORT": "abc", "TRIAGE_WORKERS": "-1"})
    assert args.version == "v1"


def test_every_flag_and_variable_the_readme_lists_for_serve_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    documented_flags = set(re.findall(r"\[(--[a-z-]+)", SERVE_README))
    documented_vars = set(re.findall(r"`(TRIAGE_[A-Z_]+)", SERVE_README))
    assert len(documented_flags) > 20 and len(documented_vars) > 20
    assert main(["serve", "--help"], {}) == 0
    shown = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for flag in documented_flags:
        assert f"{flag} " in shown, flag
    helped_vars = set(re.findall(r"env (TRIAGE_[A-Z_]+)", shown))
    # Environment only (a token on the command line would show in process listings): named in
    # the help of --token-file and --admin-token-file.
    assert documented_vars - helped_vars == {"TRIAGE_TOKENS", "TRIAGE_ADMIN_TOKENS"}
    assert "TRIAGE_TOKENS=" in shown and "TRIAGE_ADMIN_TOKENS=" in shown
    assert "(env TRIAGE_PORT; default: 50051)" in shown
    assert "(env TRIAGE_GRACE_SECONDS; default: 10)" in shown


def test_score_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--help"], {}) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--chunk-size N rows per chunk (memory bound) (default: 500)" in shown
    assert "(default: models/current)" in shown
    assert "default: the CPUs this process may use" in shown


NUMERIC_VARIABLES = {
    # variable: (what the config holds for a raw value, default, lowest, highest)
    "TRIAGE_PORT": (lambda c: c.port, int, 50051, 0, 65535),
    "TRIAGE_WORKERS": (lambda c: c.workers, int, usable_cpus(), 0, None),
    "TRIAGE_BATCH_MAX_WAIT_MS": (
        lambda c: c.batching.max_wait_seconds * 1000,
        float,
        0.0,
        0.0,
        None,
    ),
}
RAW_VALUES = st.one_of(
    st.text(),
    st.integers().map(str),
    st.floats().map(str),
    st.from_regex(r"\s*[+-]?\d{1,6}(\.\d*)?(e\d)?\s*", fullmatch=True),
)


@pytest.mark.parametrize("variable", sorted(NUMERIC_VARIABLES))
@given(value=RAW_VALUES)
@settings(max_examples=100, deadline=None)
def test_any_numeric_variable_value_is_taken_in_range_or_refused_by_name(
    variable: str, value: str
) -> None:
    held_by, convert, default, lowest, highest = NUMERIC_VARIABLES[variable]
    try:
        config = serve_config(parse_arguments(["serve"], {variable: value}))
    except ConfigError as err:
        assert str(err).startswith(f"{variable}={value!r} ")
        return
    held = held_by(config)
    assert held == pytest.approx(convert(value) if value else default)
    assert held >= lowest and (highest is None or held <= highest)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["train", "--candidate", "nope", *FAST], "--candidate"),
        (["compare", "--candidates", "nope", "--folds", "3", "--jobs", "1"], "--candidates"),
    ],
)
def test_an_unknown_candidate_is_refused_naming_the_known_ones_and_exits_2(
    argv: list[str],
    flag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from triage.training.candidates import CANDIDATES

    monkeypatch.chdir(tmp_path)  # the default --out: a model wrongly trained lands here
    assert main([*argv, "--data", str(TINY)], {}) == 2
    err = capsys.readouterr().err
    known = ", ".join(CANDIDATES)
    assert f"error: argument {flag}: 'nope' is not a candidate: expected one of {known}\n" in err
    assert "Traceback" not in err and not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("word", "on"),
    [
        *[(off, False) for off in ("false", "FALSE", " no ", "0", "off")],
        *[(on, True) for on in ("true", "Yes", "1", "on")],
    ],
)
def test_every_on_and_off_word_of_triage_batching_is_honoured(word: str, on: bool) -> None:
    config = serve_config(parse_arguments(["serve"], {"TRIAGE_BATCHING": word}))
    assert (config.batching is not None) is on


def test_a_reader_that_goes_away_gets_no_traceback(models_dir: Path) -> None:
    # `triage classify ... | head -1`: the pipe is closed before anything is written.
    text = "A caller said he was from my bank and I moved my savings"
    command = [sys.executable, "-m", "triage", "classify", "--model", str(models_dir / "current")]
    with subprocess.Popen(
        [*command, text], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        errors = process.stderr.read()
        assert process.wait(timeout=120) == 0, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
