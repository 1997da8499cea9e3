"""Run the review desk under uvicorn on a socket bound here (so port 0 works and the bound port
can be printed), plaintext only on loopback unless asked."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from triage.core.errors import TriageError

log = logging.getLogger(__name__)


def serve_desk(
    app: Starlette,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> int:
    """Serve ``app`` until SIGTERM or SIGINT; return the exit code."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise TriageError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(2048)  # before saying so: a client may connect the moment it reads the line
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,  # our logging set-up; uvicorn's access log holds paths, never texts
        access_log=True,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        server_header=False,
        timeout_graceful_shutdown=10,
        limit_concurrency=256,
    )
    server = uvicorn.Server(config)
    scheme = "https" if tls_cert else "http"
    print(f"triage review: serving on {scheme}://{host}:{bound}", flush=True)
    server.run(sockets=[sock])
    return 0
