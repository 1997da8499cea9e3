"""`triage serve`: flags and environment into a ServeConfig, then run the server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from triage.cli.common import DEFAULT_MODEL
from triage.core.errors import TriageError


def add_parser(sub: Any, env: Mapping[str, str]) -> None:
    """`triage serve` arguments; ``env`` gives their TRIAGE_* defaults."""
    p = sub.add_parser("serve", help="run the gRPC service")
    p.add_argument(
        "--host",
        default=env.get("TRIAGE_HOST", "127.0.0.1"),
        help="address to bind (env TRIAGE_HOST; default 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env.get("TRIAGE_PORT", "50051")),
        help="port, 0 for any free one (env TRIAGE_PORT; default 50051)",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=Path(env.get("TRIAGE_MODEL", str(DEFAULT_MODEL))),
        help="model directory or models/current (env TRIAGE_MODEL)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env.get("TRIAGE_WORKERS", str(os.cpu_count() or 1))),
        help="model processes; 0 scores in the server process (env TRIAGE_WORKERS; "
        "default: the machine's cores)",
    )
    p.add_argument(
        "--no-quiet-lane",
        action="store_true",
        default=env.get("TRIAGE_QUIET_LANE", "on") == "off",
        help="with --workers: keep no model copy in the server process for calls that arrive "
        "alone (saves ~35 MiB for the default model; a lone call then pays a round trip to a "
        "model process) (env TRIAGE_QUIET_LANE=off)",
    )
    p.add_argument(
        "--no-batching",
        action="store_true",
        default=env.get("TRIAGE_BATCHING", "on") == "off",
        help="score each Classify call on its own (env TRIAGE_BATCHING=off)",
    )
    p.add_argument(
        "--batch-max-size",
        type=int,
        default=int(env.get("TRIAGE_BATCH_MAX_SIZE", "64")),
        help="most Classify calls gathered into one model call (env TRIAGE_BATCH_MAX_SIZE)",
    )
    p.add_argument(
        "--batch-max-wait-ms",
        type=float,
        default=float(env.get("TRIAGE_BATCH_MAX_WAIT_MS", "0")),
        help="wait up to this long for a batch to fill; 0: never wait (env "
        "TRIAGE_BATCH_MAX_WAIT_MS)",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=int(env.get("TRIAGE_MAX_IN_FLIGHT", "256")),
        help="calls handled at once; more get RESOURCE_EXHAUSTED (env TRIAGE_MAX_IN_FLIGHT)",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=_env_path(env, "TRIAGE_TLS_CERT"),
        help="server certificate, PEM (env TRIAGE_TLS_CERT)",
    )
    p.add_argument(
        "--tls-key",
        type=Path,
        default=_env_path(env, "TRIAGE_TLS_KEY"),
        help="server private key, PEM (env TRIAGE_TLS_KEY)",
    )
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        default=_env_path(env, "TRIAGE_TLS_CLIENT_CA"),
        help="require client certificates signed by this CA: mutual TLS (env TRIAGE_TLS_CLIENT_CA)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=env.get("TRIAGE_INSECURE", "") == "1",
        help="allow plaintext on a non-loopback address (env TRIAGE_INSECURE=1)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        default=_env_path(env, "TRIAGE_TOKEN_FILE"),
        help="require a bearer token from this file, one per line "
        "(env TRIAGE_TOKEN_FILE, or TRIAGE_TOKENS=comma,separated)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(env["TRIAGE_METRICS_PORT"]) if env.get("TRIAGE_METRICS_PORT") else None,
        help="serve Prometheus /metrics on this port (env TRIAGE_METRICS_PORT)",
    )
    p.add_argument(
        "--metrics-host",
        default=env.get("TRIAGE_METRICS_HOST", "127.0.0.1"),
        help="address of the metrics endpoint (env TRIAGE_METRICS_HOST)",
    )
    p.add_argument(
        "--max-text-chars",
        type=int,
        default=int(env.get("TRIAGE_MAX_TEXT_CHARS", "100000")),
        help="longest accepted report (env TRIAGE_MAX_TEXT_CHARS; default 100000)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=int(env.get("TRIAGE_MAX_BATCH", "1000")),
        help="most reports per ClassifyBatch (env TRIAGE_MAX_BATCH; default 1000)",
    )
    p.add_argument(
        "--max-message-mb",
        type=int,
        default=int(env.get("TRIAGE_MAX_MESSAGE_MB", "64")),
        help="largest request message (env TRIAGE_MAX_MESSAGE_MB; default 64)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(env.get("TRIAGE_GRACE_SECONDS", "10")),
        help="seconds calls in flight get at shutdown (env TRIAGE_GRACE_SECONDS)",
    )
    p.add_argument(
        "--drain",
        type=float,
        default=float(env.get("TRIAGE_DRAIN_SECONDS", "0")),
        help="at shutdown, report NOT_SERVING for N s before refusing calls "
        "(env TRIAGE_DRAIN_SECONDS)",
    )
    p.add_argument(
        "--watch",
        type=float,
        default=float(env.get("TRIAGE_WATCH_SECONDS", "2")),
        help="poll the model path for a switch every N s, 0: off (env TRIAGE_WATCH_SECONDS)",
    )
    p.add_argument(
        "--access-log",
        default=env.get("TRIAGE_ACCESS_LOG", "-"),
        help="JSON-lines access log file, '-' for stderr, 'off' (env TRIAGE_ACCESS_LOG)",
    )
    p.set_defaults(command=cmd_serve, env_tokens=env.get("TRIAGE_TOKENS", ""))


def cmd_serve(args: argparse.Namespace) -> int:
    from triage.rpc.app import ServeConfig, serve
    from triage.rpc.security import TlsConfig
    from triage.runtime.microbatch import BatchingConfig
    from triage.runtime.service import Limits

    if (args.tls_cert is None) != (args.tls_key is None):
        raise TriageError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise TriageError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    config = ServeConfig(
        model_path=args.model,
        host=args.host,
        port=args.port,
        workers=args.workers,
        quiet_lane=not args.no_quiet_lane,
        batching=None
        if args.no_batching
        else BatchingConfig(args.batch_max_size, args.batch_max_wait_ms / 1000),
        max_in_flight=args.max_in_flight,
        tls=tls,
        insecure=args.insecure,
        tokens=_read_tokens(args.token_file, args.env_tokens),
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        limits=Limits(
            max_text_chars=args.max_text_chars,
            max_batch_size=args.max_batch,
            max_message_bytes=args.max_message_mb * 1024 * 1024,
        ),
        grace_seconds=args.grace,
        drain_seconds=args.drain,
        watch_seconds=args.watch,
    )
    _configure_access_log(args.access_log)
    return serve(config)


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


def _read_tokens(path: Path | None, env_tokens: str) -> tuple[str, ...]:
    """Bearer tokens from a file (one per line, '#' comments) or TRIAGE_TOKENS."""
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise TriageError(f"cannot read token file {path}: {err.strerror}") from None
        tokens = tuple(t.strip() for t in lines if t.strip() and not t.startswith("#"))
        if not tokens:
            raise TriageError(f"token file {path} holds no token")
        return tokens
    return tuple(t.strip() for t in env_tokens.split(",") if t.strip())


def _configure_access_log(target: str) -> None:
    access = logging.getLogger("triage.access")
    access.propagate = False
    if target == "off":
        access.disabled = True
        return
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if target == "-" else logging.FileHandler(target)
    )
    handler.setFormatter(logging.Formatter("%(message)s"))  # the record is already JSON
    access.addHandler(handler)
    access.setLevel(logging.INFO)
