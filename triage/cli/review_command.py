"""`triage review`: the review desk web application; `triage reviewer add`: its accounts."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from triage.cli.defaults import DEFAULT_MODELS, EXIT_OK
from triage.cli.options import Option, Switch
from triage.cli.store_commands import (
    KEY_FILE_OPTION,
    KEYS_OPTION,
    STORE_OPTION,
    cipher_of,
    store_url,
)
from triage.cli.values import PORT, path
from triage.core.errors import TriageError

DEFAULT_ACCOUNTS = Path("data/review-accounts")

ACCOUNTS_OPTION = Option(
    "--accounts",
    "the desk's accounts file (NAME ROLE HASH lines, mode 600), written by `triage reviewer add`",
    read=path,
    default=DEFAULT_ACCOUNTS,
    env="TRIAGE_REVIEW_ACCOUNTS",
    metavar="FILE",
)

REVIEW_OPTIONS: tuple[Option | Switch, ...] = (
    STORE_OPTION,
    KEY_FILE_OPTION,
    KEYS_OPTION,
    ACCOUNTS_OPTION,
    Option("--models", "the models folder", read=path, default=DEFAULT_MODELS, metavar="DIR"),
    Option("--host", "address to bind", default="127.0.0.1", env="TRIAGE_REVIEW_HOST"),
    Option("--port", "port, 0 for any free one", read=PORT, default=8080, env="TRIAGE_REVIEW_PORT"),
    Option("--tls-cert", "serve HTTPS with this certificate (PEM)", read=path, metavar="FILE"),
    Option("--tls-key", "the certificate's private key (PEM)", read=path, metavar="FILE"),
    Switch(
        "--insecure",
        "insecure",
        "allow plaintext HTTP on a non-loopback address",
        env="TRIAGE_REVIEW_INSECURE",
    ),
)

ADD_OPTIONS: tuple[Option | Switch, ...] = (
    Option("name", "the account's name (no spaces)"),
    Option("--role", "reviewer or admin", default="reviewer", choices=("reviewer", "admin")),
    ACCOUNTS_OPTION,
    # No flag: a password on the command line would show in every process listing.
    Option(None, "the password", env="TRIAGE_REVIEW_PASSWORD", dest="password"),
)


def run_review(args: argparse.Namespace) -> int:
    from triage.review.accounts import Accounts
    from triage.review.server import serve_desk
    from triage.review.web import Desk, create_app
    from triage.rpc.security import is_loopback
    from triage.store.database import open_store

    if (args.tls_cert is None) != (args.tls_key is None):
        raise TriageError("--tls-cert and --tls-key go together")
    if args.tls_cert is None and not args.insecure and not is_loopback(args.host):
        raise TriageError(
            f"refusing plaintext on {args.host}: the desk shows report texts and passwords. "
            "Give --tls-cert and --tls-key, bind a loopback address, or pass --insecure"
        )
    accounts = Accounts.load(args.accounts)
    store = open_store(store_url(args))
    try:
        desk = Desk(store=store, models_dir=args.models, accounts=accounts, cipher=cipher_of(args))
        app = create_app(desk, tls=args.tls_cert is not None)
        return serve_desk(app, args.host, args.port, args.tls_cert, args.tls_key)
    finally:
        store.close()


def run_add_reviewer(args: argparse.Namespace) -> int:
    from triage.review.accounts import add_account

    password = args.password
    if not password:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise TriageError("the passwords differ")
    add_account(args.accounts, args.name, args.role, password)
    print(f"{args.name} ({args.role}) can sign in to the desk; accounts in {args.accounts}")
    return EXIT_OK
