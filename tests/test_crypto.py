"""Report texts at rest: sealed under the current key, opened under any configured key, rotated
to a new key, and keys loaded only from files nobody else can read."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.cli import main
from triage.core.model import Prediction
from triage.store.crypto import TextCipher, generate_key, key_id, load_cipher
from triage.store.database import open_store
from triage.store.errors import KeyProblem
from triage.store.records import Decision
from triage.store.retention import read_text, rotate_keys, text_holdings

SECRET = "Caller at 14 Elm Road says the parcel smells of fuel; name Ayesha Khan, 07700 900123"
LATER = datetime.now(UTC) + timedelta(days=30)
PREDICTION = Prediction(
    label="terrorism",
    confidence=0.51,
    scores=(("terrorism", 0.51), ("general", 0.49)),
    needs_review=True,
    top_terms=(),
    model_version="20261201-000000",
)
QUIET = ["--log-level", "warning"]
ROUND_TRIP_KEY = generate_key()


def key_file(path: Path, *keys: bytes, mode: int = 0o600) -> Path:
    path.write_text(
        "# current key first\n" + "".join(k.decode() + "\n" for k in keys), encoding="utf-8"
    )
    path.chmod(mode)
    return path


def test_a_sealed_text_opens_again_and_its_ciphertext_does_not_hold_it() -> None:
    cipher = TextCipher.from_keys([generate_key()])
    sealed = cipher.seal(SECRET, LATER)
    assert sealed.key_id == cipher.primary_key_id
    assert len(sealed.key_id) == 12
    assert sealed.expires_at == LATER
    assert cipher.open(sealed.ciphertext) == SECRET
    token = base64.urlsafe_b64decode(sealed.ciphertext)
    for fragment in ("Ayesha", "Elm Road", "07700"):
        assert fragment.encode() not in sealed.ciphertext
        assert fragment.encode() not in token
    # Sealed twice, the same text gives two different ciphertexts (a fresh IV each time).
    assert cipher.seal(SECRET, LATER).ciphertext != sealed.ciphertext


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=2_000))
def test_any_text_survives_the_round_trip(text: str) -> None:
    cipher = TextCipher.from_keys([ROUND_TRIP_KEY])
    assert cipher.open(cipher.seal(text, LATER).ciphertext) == text


def test_a_wrong_key_is_a_key_problem_naming_the_key_not_the_text() -> None:
    sealer = TextCipher.from_keys([generate_key()])
    sealed = sealer.seal(SECRET, LATER)
    other = TextCipher.from_keys([generate_key()])
    with pytest.raises(KeyProblem) as raised:
        other.open(sealed.ciphertext, sealed.key_id)
    message = str(raised.value)
    assert sealed.key_id in message
    assert "key file" in message  # what to do about it
    assert "Ayesha" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(KeyProblem, match="no configured key"):
        other.open(sealed.ciphertext)
    with pytest.raises(KeyProblem):
        other.rotate(sealed.ciphertext, sealed.key_id)
    with pytest.raises(KeyProblem):  # damaged ciphertext under the right key
        sealer.open(sealed.ciphertext[:-4] + b"AAAA", sealed.key_id)


def test_key_file_and_environment_give_keys_newest_first(tmp_path: Path) -> None:
    new, old = generate_key(), generate_key()
    from_file = load_cipher(key_file(tmp_path / "keys", new, old), None)
    from_env = load_cipher(None, f" {new.decode()} , {old.decode()} ")
    assert from_file is not None and from_env is not None
    assert from_file.key_ids == from_env.key_ids == (key_id(new), key_id(old))
    assert from_file.primary_key_id == key_id(new)
    assert load_cipher(None, None) is None
    assert load_cipher(None, "  ") is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path / "keys", generate_key(), mode=mode)
    with pytest.raises(KeyProblem, match="chmod 600") as raised:
        load_cipher(path, None)
    assert str(path) in str(raised.value)


def test_a_malformed_key_line_is_named_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    broken = "c2VjcmV0LWJ1dC1icm9rZW4tYW5kLXRvby1zaG9ydA"  # 42 characters, not a key
    path.write_text(
        f"# keys\n{generate_key().decode()}\n\n{broken}\n{generate_key().decode()}\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    with pytest.raises(KeyProblem) as raised:
        load_cipher(path, None)
    message = str(raised.value)
    assert f"{path}: line 4" in message
    assert broken not in message
    with pytest.raises(KeyProblem, match="TRIAGE_STORE_KEYS: key 2") as from_env:
        load_cipher(None, f"{generate_key().decode()},{broken}")
    assert broken not in str(from_env.value)


@pytest.mark.parametrize(
    "content, problem",
    [("# only a comment\n\n", "holds no key"), (b"\xff\xfe", "not UTF-8")],
)
def test_a_key_file_without_a_usable_key_is_refused(
    tmp_path: Path, content: str | bytes, problem: str
) -> None:
    path = tmp_path / "keys"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(KeyProblem, match=problem):
        load_cipher(path, None)
    with pytest.raises(KeyProblem, match="does not exist"):
        load_cipher(tmp_path / "missing", None)


def test_keygen_writes_a_private_key_file_and_never_overwrites_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys"
    assert main([*QUIET, "store", "keygen", "--out", str(path)], env={}) == 0
    assert path.stat().st_mode & 0o777 == 0o600
    written = path.read_bytes()
    cipher = load_cipher(path, None)
    assert cipher is not None
    assert cipher.primary_key_id in capsys.readouterr().out  # the id, never the key
    assert main([*QUIET, "store", "keygen", "--out", str(path)], env={}) == 1
    assert "already exists" in capsys.readouterr().err
    assert path.read_bytes() == written
    assert main([*QUIET, "store", "keygen"], env={}) == 0
    printed = capsys.readouterr().out.strip().encode()
    assert TextCipher.from_keys([printed]).primary_key_id == key_id(printed)


def test_rotation_keeps_old_texts_readable_then_moves_them_to_the_new_key(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = generate_key(), generate_key()
    old_cipher = TextCipher.from_keys([old])
    store = open_store(store_url)
    try:
        decisions = [
            Decision.of(
                PREDICTION,
                report_id=f"r{i}",
                source="Classify",
                text=old_cipher.seal(f"{SECRET} #{i}", LATER),
            )
            for i in range(7)
        ]
        store.insert_decisions(decisions)
        # The new key goes in front; the old key, second, still opens the old texts.
        both = load_cipher(key_file(tmp_path / "keys", new, old), None)
        assert both is not None
        assert read_text(store, both, decisions[3].decision_id) == f"{SECRET} #3"
        only_new = TextCipher.from_keys([new])
        with pytest.raises(KeyProblem, match=key_id(old)):
            read_text(store, only_new, decisions[3].decision_id)

        argv = [*QUIET, "store", "rotate-key", "--store", store_url]
        argv += ["--store-key-file", str(tmp_path / "keys")]
        assert main(argv, env={}) == 0
        printed = capsys.readouterr().out
        assert "re-encrypted 7" in printed
        assert key_id(old) in printed  # the old key can leave the file
        assert text_holdings(store).by_key == {key_id(new): 7}

        # The old key removed, every text still opens.
        for i, decision in enumerate(decisions):
            assert read_text(store, only_new, decision.decision_id) == f"{SECRET} #{i}"
        # Again: nothing left to do.
        assert main(argv, env={}) == 0
        assert "re-encrypted 0" in capsys.readouterr().out
    finally:
        store.close()


def test_rotation_runs_batch_by_batch_and_can_be_run_again(store_url: str) -> None:
    old, new = generate_key(), generate_key()
    old_cipher, both = TextCipher.from_keys([old]), TextCipher.from_keys([new, old])
    store = open_store(store_url)
    try:
        under_old = [
            Decision.of(
                PREDICTION,
                report_id=f"o{i}",
                source="Classify",
                text=old_cipher.seal(f"old {i}", LATER),
            )
            for i in range(5)
        ]
        under_new = [
            Decision.of(
                PREDICTION, report_id=f"n{i}", source="Classify", text=both.seal(f"new {i}", LATER)
            )
            for i in range(2)
        ]
        store.insert_decisions([*under_old, *under_new])
        assert rotate_keys(store, both, batch=2) == 5
        assert rotate_keys(store, both, batch=2) == 0
        assert text_holdings(store).by_key == {key_id(new): 7}
        only_new = TextCipher.from_keys([new])
        assert read_text(store, only_new, under_old[4].decision_id) == "old 4"
        assert read_text(store, only_new, under_new[1].decision_id) == "new 1"
    finally:
        store.close()


def test_rotate_key_without_keys_says_how_to_give_them(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    open_store(store_url).close()
    assert main([*QUIET, "store", "rotate-key", "--store", store_url], env={}) == 1
    assert "--store-key-file" in capsys.readouterr().err
