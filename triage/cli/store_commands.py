"""`triage store ...`: the decision record's operator commands (migrate, status, purge, keygen,
rotate-key).

Key rotation, start to finish: ``triage store keygen`` prints a new key; put it on the first
line of the key file, above the old key; restart the servers (they now seal with the new key
and still open texts sealed with the old one); ``triage store rotate-key`` re-encrypts the
stored texts; ``triage store status`` then shows no text under the old key, which can be
removed from the file.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from triage.cli.defaults import EXIT_OK
from triage.cli.options import Option, Switch
from triage.cli.values import path

if TYPE_CHECKING:
    from triage.store.crypto import TextCipher

PURGE_ACTOR = "triage store purge"

# Shared by every command that opens the record or its keys (serve may reuse them too).
STORE_OPTION = Option(
    "--store",
    "decision record URL: sqlite:///FILE or postgresql+psycopg://USER@HOST/DB",
    env="TRIAGE_STORE",
    metavar="URL",
    shown_default="sqlite:///data/triage.db",
)
KEY_FILE_OPTION = Option(
    "--store-key-file",
    "report-text keys, one per line, current key first, older keys after it, '#' comments; "
    "mode 600 (TRIAGE_STORE_KEYS=key1,key2 gives keys without a file)",
    read=path,
    env="TRIAGE_STORE_KEY_FILE",
    metavar="FILE",
)
# No flag: a key on the command line would show in every process listing.
KEYS_OPTION = Option(None, "report-text keys", env="TRIAGE_STORE_KEYS", dest="store_keys")

MIGRATE_OPTIONS: tuple[Option | Switch, ...] = (
    STORE_OPTION,
    Option("--revision", "schema revision to upgrade to", default="head", metavar="REV"),
)
STATUS_OPTIONS: tuple[Option | Switch, ...] = (STORE_OPTION, KEY_FILE_OPTION, KEYS_OPTION)
PURGE_OPTIONS: tuple[Option | Switch, ...] = (STORE_OPTION,)
KEYGEN_OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "--out",
        "write the key to this new file (mode 600); without it the key goes to standard output",
        read=path,
        metavar="FILE",
    ),
)
ROTATE_OPTIONS: tuple[Option | Switch, ...] = (STORE_OPTION, KEY_FILE_OPTION, KEYS_OPTION)


def store_url(args: argparse.Namespace) -> str:
    from triage.store.database import default_url

    return str(args.store) if args.store else default_url()


def cipher_of(args: argparse.Namespace) -> TextCipher | None:
    """The keys given by --store-key-file (or TRIAGE_STORE_KEY_FILE), else TRIAGE_STORE_KEYS."""
    from triage.store.crypto import load_cipher

    return load_cipher(args.store_key_file, args.store_keys)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def run_migrate(args: argparse.Namespace) -> int:
    from triage.store.database import Store, describe

    url = store_url(args)
    store = Store(url)
    try:
        before = store.schema_state().current
        after = store.migrate(args.revision).current
    finally:
        store.close()
    if before == after:
        print(f"{describe(url)}: already at schema revision {after}, nothing to do")
    else:
        print(f"{describe(url)}: schema revision {before or '(empty)'} -> {after}")
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    from triage.store import retention, schema
    from triage.store.database import Store, describe, require_existing_file
    from triage.store.errors import StoreError

    url = store_url(args)
    cipher = cipher_of(args)
    require_existing_file(url)  # a mistyped path is an error, not a new empty file
    store = Store(url)
    try:
        state = store.schema_state()
        print(f"store        {describe(url)}")
        if state.current is None:
            print(f"schema       none (empty store; head is {state.head})")
            return EXIT_OK
        if state.up_to_date:
            print(f"schema       {state.current} (head)")
        else:
            print(f"schema       {state.current}, head is {state.head}: run `triage store migrate`")
        for table in schema.metadata.tables:
            try:
                rows = str(store.count(table))
            except StoreError:  # a table a later revision adds
                rows = "- (not in this revision)"
            print(f"rows         {table:<18} {rows}")
        holdings = retention.text_holdings(store)
        print(f"texts held   {holdings.held}, oldest expiry {_when(holdings.oldest_expiry)}")
        for key, count in holdings.by_key.items():
            note = ""
            if cipher is not None:
                if key == cipher.primary_key_id:
                    note = " (current key)"
                elif key in cipher.key_ids:
                    note = " (older key: `triage store rotate-key` moves these to the current one)"
                else:
                    note = " (NOT among the configured keys: these cannot be read)"
            print(f"texts under  key {key}: {count}{note}")
        last = retention.last_purge(store)
        if last is None:
            print("last purge   never")
        else:
            print(
                f"last purge   {_when(last.ran_at)} by {last.actor}: {last.texts_deleted} "
                f"deleted (expired at or before {_when(last.expired_before)})"
            )
    finally:
        store.close()
    return EXIT_OK


def run_purge(args: argparse.Namespace) -> int:
    from triage.store.database import describe
    from triage.store.retention import purge_expired

    url = store_url(args)
    from triage.store.database import open_existing

    store = open_existing(url)
    try:
        result = purge_expired(store, actor=PURGE_ACTOR)
    finally:
        store.close()
    print(
        f"{describe(url)}: purged {result.texts_deleted} report texts that expired at or before "
        f"{_when(result.expired_before)}"
    )
    return EXIT_OK


def run_keygen(args: argparse.Namespace) -> int:
    from triage.store.crypto import generate_key, key_id
    from triage.store.errors import KeyProblem

    key = generate_key()
    if args.out is None:
        print(key.decode("ascii"))
        return EXIT_OK
    target = Path(args.out)
    content = (
        "# triage report-text keys: the first key seals new texts, every key opens old ones.\n"
        "# To rotate: put a new key (triage store keygen) above this one, restart the servers,\n"
        "# run `triage store rotate-key`, then remove the old key.\n" + key.decode("ascii") + "\n"
    )
    try:
        # O_EXCL: never overwrite a key file, whose loss would lose every text sealed with it.
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyProblem(
            f"{target} already exists: not overwriting a key file (to rotate, put a new key "
            "from `triage store keygen` on its first line instead)"
        ) from None
    except OSError as err:
        raise KeyProblem(f"cannot create key file {target}: {err.strerror}") from None
    os.fchmod(handle, 0o600)  # 600 whatever the umask says
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(content)
    print(f"wrote a new key (id {key_id(key)}) to {target}, mode 600")
    return EXIT_OK


def run_rotate_key(args: argparse.Namespace) -> int:
    from triage.store.database import describe
    from triage.store.errors import KeyProblem
    from triage.store.retention import rotate_keys, text_holdings

    cipher = cipher_of(args)
    if cipher is None:
        raise KeyProblem(
            "rotate-key needs the keys: --store-key-file FILE (the new key first, the old keys "
            "after it), or TRIAGE_STORE_KEYS"
        )
    url = store_url(args)
    from triage.store.database import open_existing

    store = open_existing(url)
    try:
        rotated = rotate_keys(store, cipher)
        remaining = text_holdings(store).by_key
    finally:
        store.close()
    print(f"{describe(url)}: re-encrypted {rotated} report texts under key {cipher.primary_key_id}")
    unused = [key for key in cipher.key_ids[1:] if key not in remaining]
    if unused:
        print(f"no stored text uses key {', '.join(unused)} any more: it can leave the key file")
    return EXIT_OK
