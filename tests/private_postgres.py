"""A PostgreSQL server of a test's own, which the test may stop and start at will (a real
outage: ``pg_ctl stop -m immediate``), unlike the shared server on 127.0.0.1:5432.

Runs the PostgreSQL 15 binaries as the ``postgres`` user when the tests run as root (the server
refuses to run as root), in a temporary directory of its own; skips the test when the binaries
are not installed (fails it in CI, where they must be).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

BIN = Path(os.environ.get("TRIAGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "triage"
START_SECONDS = 60


class PrivatePostgres:
    """A running server on 127.0.0.1:``port`` with a database ``triage`` (trust auth)."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.data = home / "data"
        self.log = home / "server.log"
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
        self.running = False

    def start(self) -> None:
        """Start the server (after a crash stop it recovers first) and wait until it answers."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.home} "
            "-c fsync=off -c full_page_writes=off"  # a throwaway server: speed over safety
        )
        _as_postgres(
            [
                str(BIN / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(START_SECONDS),
            ],
            what=f"start the private PostgreSQL server (log: {self.log})",
        )
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` ends it the way a crash or a lost host would, with
        connections cut mid-transaction."""
        _as_postgres(
            [str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w"],
            what="stop the private PostgreSQL server",
        )
        self.running = False

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh private server, running, with an empty ``triage`` database; removed afterwards."""
    missing = [name for name in ("initdb", "pg_ctl") if not (BIN / name).exists()]
    if missing:
        message = f"no PostgreSQL server binaries in {BIN} ({', '.join(missing)} missing)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Under /tmp itself: pytest's tmp_path is private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="triage-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    server = None
    try:
        _as_postgres(
            [
                str(BIN / "initdb"),
                "-D",
                str(home / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            what="create the private PostgreSQL cluster",
        )
        for attempt in range(3):  # the free port may be taken before the server binds it
            server = PrivatePostgres(home, _free_port())
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        assert server is not None
        with psycopg.connect(server.admin_url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        yield server
    finally:
        if server is not None and server.running:
            with contextlib.suppress(RuntimeError):  # already gone: removing it is what matters
                server.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(command: list[str], what: str) -> None:
    """Run a server command as the postgres user (directly when not root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"cannot {what}: {output[-1] if output else done.returncode}")
