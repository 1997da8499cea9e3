"""Seal report texts for storage and open them again, under a list of keys that can be rotated.

Fernet (AES-128-CBC with an HMAC-SHA256 tag) from the ``cryptography`` package. The first key
seals; every key opens, so an operator adds a new key in front of the old one, re-encrypts the
stored texts (``triage store rotate-key``), and only then drops the old key. Each stored text
carries the short id of the key that sealed it, so a missing key can be named without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from triage.store.errors import KeyProblem
from triage.store.records import SealedText

KEYS_ENV = "TRIAGE_STORE_KEYS"  # named in messages only: the CLI's main reads the environment
KEY_ID_CHARS = 12
# A Fernet key: 32 bytes in URL-safe base64, 43 characters and one '=' of padding. Checked
# strictly, because the base64 decoder would otherwise skip stray characters silently.
_KEY_CHARS = 44
_KEY_FORM = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]=")


def generate_key() -> bytes:
    """A new random key, in the form a key file holds (44 characters of URL-safe base64)."""
    return Fernet.generate_key()


def key_id(key: bytes) -> str:
    """A short id for ``key`` that is safe to store and print: a prefix of the SHA-256 of the
    raw key bytes (48 bits of a one-way hash says nothing useful about a 256-bit key)."""
    return hashlib.sha256(_raw(key)).hexdigest()[:KEY_ID_CHARS]


def _raw(key: bytes) -> bytes:
    """The 32 key bytes, or ValueError when ``key`` is not a Fernet key (the message never
    repeats the key)."""
    key = key.strip()
    if not _KEY_FORM.fullmatch(key.decode("latin-1")):
        raise ValueError(
            f"expected {_KEY_CHARS} characters of URL-safe base64 (as `triage store keygen` writes)"
        )
    try:
        return base64.urlsafe_b64decode(key)
    except (binascii.Error, ValueError):
        raise ValueError("not URL-safe base64") from None


class TextCipher:
    """Seals texts under the primary (first) key and opens texts sealed under any of the keys."""

    def __init__(self, fernets: Sequence[Fernet], key_ids: Sequence[str]) -> None:
        if not fernets or len(fernets) != len(key_ids):
            raise KeyProblem("no encryption key configured")
        self._fernets = tuple(fernets)
        self._multi = MultiFernet(list(fernets))
        self.key_ids: tuple[str, ...] = tuple(key_ids)

    @classmethod
    def from_keys(cls, keys: Sequence[bytes]) -> TextCipher:
        """A cipher over ``keys``, newest first. Raises :class:`KeyProblem` for an empty list or
        a malformed key (naming its position, never its value)."""
        if not keys:
            raise KeyProblem(
                "no encryption key given: create one with `triage store keygen --out FILE`"
            )
        fernets: list[Fernet] = []
        ids: list[str] = []
        for position, key in enumerate(keys, start=1):
            key_bytes = key.encode("ascii", "replace") if isinstance(key, str) else bytes(key)
            try:
                raw = _raw(key_bytes)
            except ValueError as err:
                raise KeyProblem(f"encryption key {position} is not a Fernet key: {err}") from None
            fernets.append(Fernet(base64.urlsafe_b64encode(raw)))
            ids.append(hashlib.sha256(raw).hexdigest()[:KEY_ID_CHARS])
        return cls(fernets, ids)

    @property
    def primary_key_id(self) -> str:
        """The id of the key that seals new texts."""
        return self.key_ids[0]

    def seal(self, text: str, expires_at: datetime) -> SealedText:
        """Encrypt ``text`` under the primary key, to be kept until ``expires_at`` (UTC-aware)."""
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware (the record keeps UTC)")
        token = self._fernets[0].encrypt(text.encode("utf-8"))
        # In UTC: SQLite keeps times without their offset, and purges compare them as written.
        return SealedText(
            ciphertext=token, key_id=self.primary_key_id, expires_at=expires_at.astimezone(UTC)
        )

    def open(self, ciphertext: bytes, key_id: str | None = None) -> str:
        """The text sealed in ``ciphertext``. ``key_id`` (as stored beside it, when known) only
        makes the message better when no configured key opens it."""
        try:
            return self._multi.decrypt(bytes(ciphertext)).decode("utf-8")
        except (InvalidToken, TypeError, UnicodeDecodeError):
            raise self._cannot_open(key_id) from None

    def rotate(self, ciphertext: bytes, key_id: str | None = None) -> bytes:
        """``ciphertext`` re-encrypted under the primary key (opened with whichever key can)."""
        try:
            return self._multi.rotate(bytes(ciphertext))
        except (InvalidToken, TypeError):
            raise self._cannot_open(key_id) from None

    def _cannot_open(self, sealed_with: str | None) -> KeyProblem:
        configured = ", ".join(self.key_ids)
        if sealed_with and sealed_with not in self.key_ids:
            return KeyProblem(
                f"a stored text was sealed with key {sealed_with}, which is not among the "
                f"configured keys ({configured}): add that key to the key file after the current "
                f"one (or to {KEYS_ENV}), then run `triage store rotate-key`"
            )
        if sealed_with:
            return KeyProblem(
                f"a stored text claims key {sealed_with} but that key does not open it: the "
                "stored ciphertext is damaged or was written with a different key of the same id"
            )
        return KeyProblem(
            f"no configured key ({configured}) opens this text: add the key it was sealed with "
            f"to the key file after the current one (or to {KEYS_ENV})"
        )


def load_cipher(key_file: Path | None, env_value: str | None) -> TextCipher | None:
    """The cipher configured by a key file or, failing that, by the keys in ``env_value``
    (the value of ``TRIAGE_STORE_KEYS``); None when neither is given. An explicit key file wins
    over the environment.

    A key file holds one key per line, the current key first and older keys after it; blank
    lines and ``#`` comments are ignored. The file must be readable by its owner only.
    """
    if key_file is not None:
        return TextCipher.from_keys(_keys_in_file(Path(key_file)))
    if env_value is not None and env_value.strip():
        return TextCipher.from_keys(_keys_in_env(env_value))
    return None


def _keys_in_file(path: Path) -> list[bytes]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise KeyProblem(
            f"key file {path} does not exist: create one with `triage store keygen --out {path}`"
        ) from None
    except OSError as err:
        raise KeyProblem(f"cannot read key file {path}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProblem(f"key file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyProblem(
            f"key file {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
            f"run `chmod 600 {path}`, and replace the keys if others may have read them"
        )
    try:
        content = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise KeyProblem(f"cannot read key file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise KeyProblem(f"key file {path} is not UTF-8 text") from None
    keys: list[bytes] = []
    for number, line in enumerate(content.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()  # '#' never occurs in URL-safe base64
        if not value:
            continue
        key = value.encode("ascii", "replace")
        try:
            _raw(key)
        except ValueError as err:
            raise KeyProblem(f"key file {path}: line {number} is not a Fernet key: {err}") from None
        keys.append(key)
    if not keys:
        raise KeyProblem(
            f"key file {path} holds no key: add one with `triage store keygen` (first line = the "
            "current key)"
        )
    return keys


def _keys_in_env(value: str) -> list[bytes]:
    keys: list[bytes] = []
    for position, item in enumerate(value.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        key = item.encode("ascii", "replace")
        try:
            _raw(key)
        except ValueError as err:
            raise KeyProblem(f"{KEYS_ENV}: key {position} is not a Fernet key: {err}") from None
        keys.append(key)
    if not keys:
        raise KeyProblem(f"{KEYS_ENV} holds no key")
    return keys
