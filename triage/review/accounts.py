"""Reviewer and admin accounts: a file of ``NAME ROLE ARGON2-HASH`` lines (``#`` comments),
written by ``triage review adduser``; passwords are only ever held as argon2id hashes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from triage.core.errors import TriageError

ROLES = ("reviewer", "admin")
MAX_NAME = 64
MIN_PASSWORD = 12
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the name is unknown, so that a wrong name takes as long as a wrong
# password and the time does not tell which names exist.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class AccountError(TriageError):
    """The accounts file cannot be read or written, or an account cannot be added as asked."""


@dataclass(frozen=True)
class Account:
    name: str
    role: str  # reviewer or admin

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Accounts:
    """The accounts of one desk, by name."""

    hashes: Mapping[str, tuple[str, str]]  # name -> (role, argon2 hash)

    @classmethod
    def load(cls, path: Path) -> Accounts:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise AccountError(f"cannot read the accounts file {path}: {err}") from None
        if path.stat().st_mode & 0o077:
            raise AccountError(f"the accounts file {path} is readable by others: chmod 600 {path}")
        hashes: dict[str, tuple[str, str]] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3 or parts[1] not in ROLES or not parts[2].startswith("$argon2"):
                raise AccountError(
                    f"{path}: line {number}: expected NAME ROLE HASH (ROLE reviewer or admin, "
                    "HASH as `triage review adduser` writes it)"
                )
            hashes[parts[0]] = (parts[1], parts[2])
        if not hashes:
            raise AccountError(
                f"{path} holds no account: add one with `triage review adduser NAME --accounts "
                f"{path}`"
            )
        return cls(hashes)

    def verify(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is its password; None otherwise (in about the same time
        whether or not the name exists)."""
        role, hashed = self.hashes.get(name, ("", _DUMMY_HASH))
        try:
            _HASHER.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return None
        return Account(name, role) if role else None


def add_account(path: Path, name: str, role: str, password: str) -> None:
    """Add (or replace) ``name`` in the accounts file, creating it with mode 600."""
    if not name or len(name) > MAX_NAME or not name.isprintable() or any(c.isspace() for c in name):
        raise AccountError(f"a name is 1 to {MAX_NAME} printable characters without spaces")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    kept: list[str] = []
    if path.exists():
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.split() or line.split()[0] != name
        ]
    kept.append(f"{name} {role} {_HASHER.hash(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept) + "\n")
    os.replace(temporary, path)
