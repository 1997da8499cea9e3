"""`triage serve`: flags and environment into a ServeConfig, then run the server."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from triage.cli.cpus import usable_cpus
from triage.cli.defaults import (
    DEFAULT_MODEL,
    DEFAULT_PURGE_SECONDS,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_SPOOL,
)
from triage.cli.options import Option, Switch
from triage.cli.store_commands import (
    KEY_FILE_OPTION,
    KEYS_OPTION,
    STORE_OPTION,
    cipher_of,
    store_url,
)
from triage.cli.values import PORT, integer, number, path, probability, token_list
from triage.core.errors import TriageError

if TYPE_CHECKING:
    from triage.rpc.app import ServeConfig
    from triage.runtime.recording import RecordConfig


OPTIONS: tuple[Option | Switch, ...] = (
    Option("--host", "address to bind", default="127.0.0.1", env="TRIAGE_HOST"),
    Option("--port", "port, 0 for any free one", read=PORT, default=50051, env="TRIAGE_PORT"),
    Option(
        "--model",
        "model directory or models/current",
        read=path,
        default=DEFAULT_MODEL,
        env="TRIAGE_MODEL",
        metavar="PATH",
    ),
    Option(
        "--workers",
        "model processes; 0 scores in the server process",
        read=integer(0),
        env="TRIAGE_WORKERS",
        metavar="N",
        shown_default="the CPUs this process may use (affinity and cgroup quota)",
    ),
    Switch(
        "--no-quiet-lane",
        "quiet_lane",
        "with --workers: keep no model copy in the server process for calls that arrive alone "
        "(saves ~35 MiB for the default model; a lone call then pays a round trip to a model "
        "process)",
        sets=False,
        env="TRIAGE_QUIET_LANE",
    ),
    Switch(
        "--no-batching",
        "batching",
        "score each Classify call on its own",
        sets=False,
        env="TRIAGE_BATCHING",
    ),
    Option(
        "--batch-max-size",
        "most Classify calls gathered into one model call",
        read=integer(1),
        default=64,
        env="TRIAGE_BATCH_MAX_SIZE",
        metavar="N",
    ),
    Option(
        "--batch-max-wait-ms",
        "wait up to this long for a batch to fill; 0: never wait",
        read=number(0),
        default=0.0,
        env="TRIAGE_BATCH_MAX_WAIT_MS",
        metavar="MS",
    ),
    Option(
        "--max-in-flight",
        "unary calls handled at once; more get RESOURCE_EXHAUSTED (health checks never do)",
        read=integer(1),
        default=256,
        env="TRIAGE_MAX_IN_FLIGHT",
        metavar="N",
    ),
    Option(
        "--max-streams",
        "long-lived streams open at once (ClassifyStream, Health/Watch); more get "
        "RESOURCE_EXHAUSTED",
        read=integer(1),
        default=64,
        env="TRIAGE_MAX_STREAMS",
        metavar="N",
    ),
    Option(
        "--max-streams-per-connection",
        "streams open at once on one client connection",
        read=integer(1),
        default=16,
        env="TRIAGE_MAX_STREAMS_PER_CONNECTION",
        metavar="N",
    ),
    Option(
        "--max-in-flight-mb",
        "request MiB handled at once (messages over 64 KiB count); a request over it gets "
        "RESOURCE_EXHAUSTED",
        read=integer(1),
        default=64,
        env="TRIAGE_MAX_IN_FLIGHT_MB",
        metavar="N",
    ),
    Option(
        "--max-text-chars",
        "longest accepted report, in characters",
        read=integer(1),
        default=100_000,
        env="TRIAGE_MAX_TEXT_CHARS",
        metavar="N",
    ),
    Option(
        "--max-batch",
        "most reports per ClassifyBatch",
        read=integer(1),
        default=1000,
        env="TRIAGE_MAX_BATCH",
        metavar="N",
    ),
    Option(
        "--model-timeout",
        "a model process that has not answered a batch in this long (plus 1 s per 100,000 "
        "characters of its text) is taken as hung, killed and restarted",
        read=number(0.1),
        default=5.0,
        env="TRIAGE_MODEL_TIMEOUT",
        metavar="SECONDS",
    ),
    Option(
        "--max-message-mb",
        "largest request message, in MiB",
        # gRPC takes the size in bytes as a signed 32-bit integer.
        read=integer(1, 2047),
        default=16,
        env="TRIAGE_MAX_MESSAGE_MB",
        metavar="N",
    ),
    Option(
        "--tls-cert", "server certificate, PEM", read=path, env="TRIAGE_TLS_CERT", metavar="FILE"
    ),
    Option("--tls-key", "server private key, PEM", read=path, env="TRIAGE_TLS_KEY", metavar="FILE"),
    Option(
        "--tls-client-ca",
        "require client certificates signed by this CA: mutual TLS",
        read=path,
        env="TRIAGE_TLS_CLIENT_CA",
        metavar="FILE",
    ),
    Switch(
        "--insecure",
        "insecure",
        "allow plaintext on a non-loopback address",
        env="TRIAGE_INSECURE",
    ),
    Option(
        "--token-file",
        "require a bearer token from this file, one per line, '#' comments (client tokens: "
        "every call but ReloadModel); TRIAGE_TOKENS=tok1,tok2 gives tokens without a file",
        read=path,
        env="TRIAGE_TOKEN_FILE",
        metavar="FILE",
    ),
    # No flag: a token on the command line would show in every process listing.
    Option(None, "bearer tokens", read=token_list, default=(), env="TRIAGE_TOKENS", dest="tokens"),
    Option(
        "--admin-token-file",
        "admin bearer tokens (may also call ReloadModel), same format as --token-file; "
        "TRIAGE_ADMIN_TOKENS=tok1,tok2 gives them without a file",
        read=path,
        env="TRIAGE_ADMIN_TOKEN_FILE",
        metavar="FILE",
    ),
    Option(
        None,
        "admin bearer tokens",
        read=token_list,
        default=(),
        env="TRIAGE_ADMIN_TOKENS",
        dest="admin_tokens",
    ),
    Option(
        "--metrics-port",
        "serve Prometheus /metrics on this port",
        read=PORT,
        env="TRIAGE_METRICS_PORT",
        metavar="PORT",
        shown_default="off",
    ),
    Option(
        "--metrics-host",
        "address of the metrics endpoint; beyond loopback needs --insecure",
        default="127.0.0.1",
        env="TRIAGE_METRICS_HOST",
        metavar="HOST",
    ),
    Option(
        "--grace",
        "seconds calls in flight get at shutdown",
        read=number(0),
        default=10.0,
        env="TRIAGE_GRACE_SECONDS",
        metavar="SECONDS",
    ),
    Option(
        "--drain",
        "at shutdown, report NOT_SERVING for N s before refusing calls",
        read=number(0),
        default=0.0,
        env="TRIAGE_DRAIN_SECONDS",
        metavar="N",
    ),
    Option(
        "--watch",
        "poll the model path for a switch every N s, 0: off",
        read=number(0),
        default=2.0,
        env="TRIAGE_WATCH_SECONDS",
        metavar="N",
    ),
    Option(
        "--access-log",
        "JSON-lines access log: a file, '-' for stderr, or 'off'",
        default="-",
        env="TRIAGE_ACCESS_LOG",
        metavar="-|FILE|off",
    ),
    Option(
        "--reviewer-token-file",
        "reviewer bearer tokens (may also call SubmitFeedback and GetDecision), same format as "
        "--token-file; TRIAGE_REVIEWER_TOKENS=tok1,tok2 gives them without a file",
        read=path,
        env="TRIAGE_REVIEWER_TOKEN_FILE",
        metavar="FILE",
    ),
    Option(
        None,
        "reviewer bearer tokens",
        read=token_list,
        default=(),
        env="TRIAGE_REVIEWER_TOKENS",
        dest="reviewer_tokens",
    ),
    # The decision record.
    STORE_OPTION,
    Switch(
        "--no-record",
        "record",
        "do not record decisions (no decision ids; SubmitFeedback and GetDecision refused)",
        sets=False,
        env="TRIAGE_RECORD",
    ),
    Option(
        "--spool",
        "the local journal of decisions on their way to the store (one server per folder)",
        read=path,
        default=DEFAULT_SPOOL,
        env="TRIAGE_SPOOL",
        metavar="DIR",
    ),
    Switch(
        "--review-queue",
        "review_queue",
        "keep the text of decisions that need review, encrypted (needs a key), for review",
        env="TRIAGE_REVIEW_QUEUE",
    ),
    KEY_FILE_OPTION,
    KEYS_OPTION,
    Option(
        "--retention-days",
        "days a kept report text is held before it is purged",
        read=number(0.001),
        default=float(DEFAULT_RETENTION_DAYS),
        env="TRIAGE_RETENTION_DAYS",
        metavar="DAYS",
    ),
    Option(
        "--purge-every",
        "seconds between purges of expired texts, 0: only `triage store purge`",
        read=number(0),
        default=DEFAULT_PURGE_SECONDS,
        env="TRIAGE_PURGE_SECONDS",
        metavar="SECONDS",
    ),
    Option(
        "--shadow",
        "also score a share of live reports with this candidate model (models/VERSION), off "
        "the request path, and record its answers beside the live ones",
        read=path,
        env="TRIAGE_SHADOW",
        metavar="DIR",
    ),
    Option(
        "--quality-every",
        "seconds between computations of the live-quality gauges from the record, 0: off",
        read=number(0),
        default=60.0,
        env="TRIAGE_QUALITY_SECONDS",
        metavar="SECONDS",
    ),
    Option(
        "--shadow-share",
        "the share of live reports the shadow model scores",
        read=probability,
        default=0.1,
        env="TRIAGE_SHADOW_SHARE",
        metavar="P",
    ),
)


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """The server's configuration from the parsed ``triage serve`` options."""
    from triage.rpc.app import ServeConfig
    from triage.rpc.security import TlsConfig
    from triage.runtime.microbatch import BatchingConfig
    from triage.runtime.service import Limits
    from triage.runtime.supervision import Supervision

    if (args.tls_cert is None) != (args.tls_key is None):
        raise TriageError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise TriageError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    batching = BatchingConfig(args.batch_max_size, args.batch_max_wait_ms / 1000)
    return ServeConfig(
        model_path=args.model,
        host=args.host,
        port=args.port,
        workers=usable_cpus() if args.workers is None else args.workers,
        quiet_lane=args.quiet_lane,
        batching=batching if args.batching else None,
        max_in_flight=args.max_in_flight,
        max_streams=args.max_streams,
        max_streams_per_connection=args.max_streams_per_connection,
        max_request_bytes=args.max_in_flight_mb * 1024 * 1024,
        tls=tls,
        insecure=args.insecure,
        tokens=_read_tokens(args.token_file) if args.token_file else args.tokens,
        admin_tokens=(
            _read_tokens(args.admin_token_file) if args.admin_token_file else args.admin_tokens
        ),
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        supervision=Supervision(batch_seconds=args.model_timeout),
        limits=Limits(
            max_text_chars=args.max_text_chars,
            max_batch_size=args.max_batch,
            max_message_bytes=args.max_message_mb * 1024 * 1024,
        ),
        reviewer_tokens=(
            _read_tokens(args.reviewer_token_file)
            if args.reviewer_token_file
            else args.reviewer_tokens
        ),
        record=_record_config(args),
        grace_seconds=args.grace,
        drain_seconds=args.drain,
        watch_seconds=args.watch,
    )


def _record_config(args: argparse.Namespace) -> RecordConfig | None:
    from datetime import timedelta

    from triage.runtime.recording import RecordConfig, ReviewQueue

    if not args.record:
        for given, flag in ((args.review_queue, "--review-queue"), (args.shadow, "--shadow")):
            if given:
                raise TriageError(f"{flag} needs the decision record: drop --no-record")
        return None
    review_queue = None
    if args.review_queue:
        cipher = cipher_of(args)
        if cipher is None:
            raise TriageError(
                "--review-queue keeps report texts, encrypted: give --store-key-file FILE (make "
                "one with `triage store keygen --out FILE`) or TRIAGE_STORE_KEYS"
            )
        review_queue = ReviewQueue(cipher, timedelta(days=args.retention_days))
    return RecordConfig(
        store_url=store_url(args),
        spool_dir=args.spool,
        review_queue=review_queue,
        purge_seconds=args.purge_every,
        shadow_model=args.shadow,
        shadow_share=args.shadow_share,
        quality_seconds=args.quality_every,
    )


def run_serve(args: argparse.Namespace) -> int:
    from triage.rpc.app import serve

    config = serve_config(args)
    _configure_access_log(args.access_log)
    return serve(config)


def _read_tokens(path: Path) -> tuple[str, ...]:
    """Bearer tokens from a file: one per line, '#' comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise TriageError(f"cannot read token file {path}: {err.strerror}") from None
    tokens = tuple(t.strip() for t in lines if t.strip() and not t.startswith("#"))
    if not tokens:
        raise TriageError(f"token file {path} holds no token")
    return tokens


def _configure_access_log(target: str) -> None:
    access = logging.getLogger("triage.access")
    access.propagate = False
    if target == "off":
        access.disabled = True
        return
    try:
        handler: logging.Handler = (
            logging.StreamHandler(sys.stderr) if target == "-" else logging.FileHandler(target)
        )
    except OSError as err:
        raise TriageError(f"cannot open access log {target}: {err.strerror}") from None
    handler.setFormatter(logging.Formatter("%(message)s"))  # the record is already JSON
    access.addHandler(handler)
    access.setLevel(logging.INFO)
