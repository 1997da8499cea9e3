"""The ``triage`` command line: the one place that reads argv, sets up logging and exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from triage.errors import PromotionRefused, TriageError

log = logging.getLogger("triage")

DEFAULT_MODELS = Path("models")
DEFAULT_MODEL = DEFAULT_MODELS / "current"
DEFAULT_TRAIN = Path("training/data/train.jsonl")
DEFAULT_TEST = Path("training/data/test.jsonl")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_PROMOTED = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one ``triage`` command; return its exit code."""
    parser = build_parser(os.environ if env is None else env)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except PromotionRefused as err:
        print(f"triage: not promoted: {err}", file=sys.stderr)
        return EXIT_NOT_PROMOTED
    except TriageError as err:
        print(f"triage: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The argument parser; ``env`` supplies the TRIAGE_* defaults of ``triage serve``."""
    parser = argparse.ArgumentParser(
        prog="triage", description="Classify public reports and police releases."
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model, print its evaluation, optionally promote it")
    p.add_argument("--data", type=Path, default=DEFAULT_TRAIN, help="labelled training file")
    p.add_argument(
        "--test",
        type=Path,
        default=None,
        help=f"held-out test file (default: {DEFAULT_TEST} when --data is the default)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_MODELS, help="models directory")
    p.add_argument("--candidate", default=None, help="pipeline to train (see `triage compare`)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--target-precision",
        type=float,
        default=0.99,
        help="precision the review threshold must buy (default 0.99)",
    )
    p.add_argument("--no-search", action="store_true", help="skip the hyper-parameter grid")
    p.add_argument("--jobs", type=int, default=-1, help="parallel jobs (-1: all cores)")
    p.add_argument("--version", default=None, help="version name (default: UTC timestamp)")
    p.add_argument("--promote", action="store_true", help="promote if it passes the gate")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="macro-F1 the new model may lose against the current one and still promote",
    )
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the models directory already has a current model",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(command=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model on any labelled CSV/JSONL file")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--plots", type=Path, default=None, help="write PNG plots into this directory")
    p.set_defaults(command=cmd_evaluate)

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

    p = sub.add_parser("classify", help="classify one text (or '-' for standard input)")
    p.add_argument("text", help="the report text, or '-' to read it from standard input")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument(
        "--target",
        default=None,
        help="ask a running service at HOST:PORT instead of loading the model",
    )
    p.add_argument("--top-terms", type=int, default=5)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(command=cmd_classify)

    p = sub.add_parser("promote", help="make VERSION the current model (promote or roll back)")
    p.add_argument("version")
    p.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    p.set_defaults(command=cmd_promote)

    p = sub.add_parser("compare", help="compare the candidate pipelines by cross-validation")
    p.add_argument("--data", type=Path, default=DEFAULT_TRAIN)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=-1)
    p.add_argument("--candidates", nargs="*", default=None)
    p.add_argument(
        "--test", type=Path, default=None, help="also report test macro-F1 (never used to choose)"
    )
    p.set_defaults(command=cmd_compare)

    p = sub.add_parser("score", help="score archives of reports in batch (one machine or Dask)")
    p.add_argument(
        "inputs",
        nargs="+",
        help="CSV, JSONL or Parquet files (.gz too), folders or globs of .txt files",
    )
    p.add_argument("--out", type=Path, required=True, help="OUTPUT.csv, .jsonl or .parquet")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="scoring processes (default: all cores)",
    )
    p.add_argument("--chunk-size", type=int, default=500, help="rows per chunk (memory bound)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--id-column", default="id", help="(default id; a row number if absent)")
    p.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="N",
        help="add a top_terms column with N explanation terms",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        default=None,
        help="score on a Dask cluster: a scheduler address, or 'local'",
    )
    p.set_defaults(command=cmd_score)

    data = sub.add_parser("data", help="labelled-data tools").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = data.add_parser("check", help="counts, lengths, duplicates and train/test leakage")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(command=cmd_data_check)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from triage.artifacts import new_version, resolve_current, write_artifact
    from triage.candidates import DEFAULT_CANDIDATE
    from triage.corpus import read_labelled
    from triage.metrics import format_report
    from triage.promotion import gate_and_promote
    from triage.training import TrainConfig, train

    if args.if_missing and resolve_current(args.out) is not None:
        print(f"{args.out / 'current'} exists: nothing to train")
        return EXIT_OK
    test_path = args.test
    if test_path is None and args.data == DEFAULT_TRAIN and DEFAULT_TEST.exists():
        test_path = DEFAULT_TEST
    data = read_labelled(args.data)
    config = TrainConfig(
        candidate=args.candidate or DEFAULT_CANDIDATE,
        folds=args.folds,
        seed=args.seed,
        target_precision=args.target_precision,
        n_jobs=args.jobs,
        search=not args.no_search,
    )
    test = None
    if test_path is not None:
        test = read_labelled(test_path, known_labels=set(data.labels))
    log.info("training %s on %d rows of %s", config.candidate, len(data.rows), args.data)
    result = train(data, test, config)
    version = args.version or new_version()
    path = write_artifact(args.out, version, result.pipeline, result.card)
    decision = None
    if args.promote:
        if test is None or result.test is None:
            raise TriageError("--promote needs a test file (--test) to compare models on")
        decision = gate_and_promote(
            args.out, version, result.test["macro_f1"], test, tolerance=args.tolerance
        )
    if args.format == "json":
        _print_json(
            {
                "version": version,
                "path": str(path),
                "metrics": result.card["metrics"],
                "review": result.card["review"],
                "params": result.card["params"],
                "promoted": decision.promoted if decision else False,
                "promotion": decision.reason if decision else None,
            }
        )
    else:
        print(f"model {version} written to {path} ({result.card['training_seconds']:.1f} s)")
        print(f"candidate {config.candidate}, params {result.card['params'] or 'defaults'}")
        print(format_report(f"cross-validation ({config.folds}-fold, out-of-fold)", result.cv))
        if result.test is not None:
            print(format_report(f"test: {test_path}", result.test))
        if decision:
            print(decision.reason)
    if decision and not decision.promoted:
        raise PromotionRefused(decision.reason)
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from triage.corpus import read_labelled
    from triage.metrics import evaluate, format_report
    from triage.model import load_model

    model = load_model(args.model)
    data = read_labelled(args.data, known_labels=set(model.labels))
    result = evaluate(
        data.labels, model.predict_proba(data.texts), model.labels, model.review_threshold
    )
    result["model_version"] = model.version
    if args.plots is not None:
        from triage.plots import write_plots

        result["plots"] = [str(p) for p in write_plots(result, args.plots)]
    if args.format == "json":
        _print_json(result)
    else:
        print(format_report(f"model {model.version} on {args.data}", result))
        for plot in result.get("plots", []):
            print(f"wrote {plot}")
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from triage.model import load_model

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise TriageError("the text is empty: pass the report text or '-' to read standard input")
    if args.target:
        answer = _classify_remote(args.target, text, args.top_terms)
    else:
        p = load_model(args.model).predict([text], top_k=args.top_terms)[0]
        answer = {
            "label": p.label,
            "confidence": p.confidence,
            "needs_review": p.needs_review,
            "scores": dict(p.scores),
            "top_terms": [list(t) for t in p.top_terms],
            "model_version": p.model_version,
        }
    if args.format == "json":
        _print_json(answer)
        return EXIT_OK
    review = "  (needs human review)" if answer["needs_review"] else ""
    print(f"{answer['label']}  {answer['confidence']:.3f}{review}")
    for label, score in answer["scores"].items():
        print(f"  {label:<20} {score:.3f}")
    terms = ", ".join(f"{term} ({weight:.3f})" for term, weight in answer["top_terms"])
    print(f"  top terms: {terms or '(none)'}")
    print(f"  model {answer['model_version']}")
    return EXIT_OK


def _classify_remote(target: str, text: str, top_terms: int) -> dict[str, Any]:
    import grpc

    from triage.client import TriageClient

    with TriageClient(target) as client:
        try:
            c = client.classify(text, explanation_terms=top_terms)
        except grpc.RpcError as err:
            raise TriageError(f"{target}: {err.code().name}: {err.details()}") from None
    return {
        "label": c.label,
        "confidence": c.confidence,
        "needs_review": c.needs_review,
        "scores": c.scores,
        "top_terms": [list(t) for t in c.explanation],
        "model_version": c.model_version,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from triage.batching import BatchingConfig
    from triage.server.app import ServeConfig, serve
    from triage.server.security import TlsConfig
    from triage.service import Limits

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


def cmd_promote(args: argparse.Namespace) -> int:
    from triage.artifacts import promote, resolve_current

    previous = resolve_current(args.models)
    promote(args.models, args.version, reason="manual")
    print(f"current -> {args.version} (was {previous.name if previous else 'none'})")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from triage.compare import compare_candidates, format_comparison
    from triage.corpus import read_labelled
    from triage.training import TrainConfig

    data = read_labelled(args.data)
    test = read_labelled(args.test, known_labels=set(data.labels)) if args.test else None
    rows = compare_candidates(
        data,
        TrainConfig(folds=args.folds, seed=args.seed, n_jobs=args.jobs),
        args.candidates,
        test=test,
    )
    print(format_comparison(rows))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from triage.archive import ArchiveSpec, count_rows

    if args.chunk_size < 1 or args.workers < 1:
        raise TriageError("--chunk-size and --workers must be at least 1")
    spec = ArchiveSpec(tuple(args.inputs), args.text_column, args.id_column)
    if args.dask:
        from triage.dask_scoring import DaskJob, score_on_dask

        # Before dask is imported; worker processes inherit it. An explicit setting wins.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

        summary = score_on_dask(
            DaskJob(
                spec,
                args.out,
                args.model,
                args.dask,
                args.workers,
                args.chunk_size,
                args.explain,
                args.overwrite,
            )
        )
        _print_summary(summary, "on Dask")
        return EXIT_OK

    from triage.batch import ScoreJob, run_score_job
    from triage.progress import ProgressDisplay

    job = ScoreJob(
        spec,
        args.out,
        args.model,
        args.workers,
        args.chunk_size,
        args.explain,
        args.resume,
        args.overwrite,
    )
    mode = "off" if args.quiet else ("bar" if sys.stderr.isatty() else "log")
    total = None if mode == "off" else count_rows(spec)
    try:
        with ProgressDisplay(mode, total) as display:
            summary = run_score_job(job, progress=display.update)
    except KeyboardInterrupt:
        print(
            f"triage: interrupted; continue with: triage score ... --out {args.out} --resume",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        _print_summary(summary, "")
    return EXIT_OK


def _print_summary(summary: Any, where: str) -> None:
    """The end-of-run summary of a local or Dask scoring run (a ``ScoreSummary``)."""
    rate = f" ({summary.rows_per_s:,.0f} rows/s)" if summary.rows_per_s else ""
    place = f"{where} " if where else ""
    print(
        f"scored {summary.scored:,} of {summary.rows:,} rows {place}with model "
        f"{summary.model_version} in {summary.seconds:.1f} s{rate} -> {summary.output}"
    )
    if summary.resumed_from:
        print(f"  resumed after row {summary.resumed_from:,}")
    for label, n in summary.labels.most_common():
        print(f"  {label:<20} {n:>10,}")
    share = summary.needs_review / summary.scored if summary.scored else 0.0
    print(f"  needs review: {summary.needs_review:,} ({share:.1%})")
    if summary.errors_file:
        detail = f" (see {summary.errors_file})"
    elif summary.errors_column and summary.errors:
        detail = f" (rows with a non-empty {summary.errors_column!r} column)"
    else:
        detail = ""
    print(f"  errors: {summary.errors:,}{detail}")


def cmd_data_check(args: argparse.Namespace) -> int:
    from triage.datacheck import check_files, format_check

    report = check_files(args.files)
    if args.format == "json":
        _print_json(report.as_dict())
    else:
        print(format_check(report))
    return EXIT_ERROR if report.failed else EXIT_OK


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
