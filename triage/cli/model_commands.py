"""Model commands: train, evaluate, classify, promote, compare, data check."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from triage.cli.common import (
    DEFAULT_MODEL,
    DEFAULT_MODELS,
    DEFAULT_TEST,
    DEFAULT_TRAIN,
    EXIT_ERROR,
    EXIT_OK,
    print_json,
)
from triage.core.errors import PromotionRefused, TriageError

log = logging.getLogger("triage")


def add_parsers(sub: Any, env: Mapping[str, str]) -> None:
    """The model commands' arguments."""
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

    data = sub.add_parser("data", help="labelled-data tools").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = data.add_parser("check", help="counts, lengths, duplicates and train/test leakage")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(command=cmd_data_check)


def cmd_train(args: argparse.Namespace) -> int:
    from triage.core.artifacts import new_version, resolve_current, write_artifact
    from triage.training.candidates import DEFAULT_CANDIDATE
    from triage.training.corpus import read_labelled
    from triage.training.metrics import format_report
    from triage.training.promotion import gate_and_promote
    from triage.training.train import TrainConfig, train

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
        print_json(
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
    from triage.core.model import load_model
    from triage.training.corpus import read_labelled
    from triage.training.metrics import evaluate, format_report

    model = load_model(args.model)
    data = read_labelled(args.data, known_labels=set(model.labels))
    result = evaluate(
        data.labels, model.predict_proba(data.texts), model.labels, model.review_threshold
    )
    result["model_version"] = model.version
    if args.plots is not None:
        from triage.training.plots import write_plots

        result["plots"] = [str(p) for p in write_plots(result, args.plots)]
    if args.format == "json":
        print_json(result)
    else:
        print(format_report(f"model {model.version} on {args.data}", result))
        for plot in result.get("plots", []):
            print(f"wrote {plot}")
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from triage.core.model import load_model

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
        print_json(answer)
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


def cmd_promote(args: argparse.Namespace) -> int:
    from triage.core.artifacts import promote, resolve_current

    previous = resolve_current(args.models)
    promote(args.models, args.version, reason="manual")
    print(f"current -> {args.version} (was {previous.name if previous else 'none'})")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from triage.training.compare import compare_candidates, format_comparison
    from triage.training.corpus import read_labelled
    from triage.training.train import TrainConfig

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


def cmd_data_check(args: argparse.Namespace) -> int:
    from triage.training.datacheck import check_files, format_check

    report = check_files(args.files)
    if args.format == "json":
        print_json(report.as_dict())
    else:
        print(format_check(report))
    return EXIT_ERROR if report.failed else EXIT_OK
