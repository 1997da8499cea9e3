"""Model commands: train, evaluate, classify, promote, convert, compare, data check."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triage.cli.defaults import (
    DEFAULT_MODEL,
    DEFAULT_MODELS,
    DEFAULT_TEST,
    DEFAULT_TRAIN,
    EXIT_ERROR,
    EXIT_OK,
)
from triage.cli.options import Option, Switch
from triage.cli.store_commands import STORE_OPTION, store_url
from triage.cli.values import BadValue, integer, number, path, probability
from triage.core.errors import PromotionRefused, TriageError

if TYPE_CHECKING:
    from triage.training.corpus import LabelledData, TrainingSet
    from triage.training.fairness import FairnessBounds, FairnessReport
    from triage.training.promotion import GateDecision
    from triage.training.train import TrainConfig, TrainResult

log = logging.getLogger("triage")


FORMAT = Option("--format", "how to print the result", default="text", choices=("text", "json"))
MODEL = Option(
    "--model", "model directory or models/current", read=path, default=DEFAULT_MODEL, metavar="PATH"
)
FOLDS = Option("--folds", "cross-validation folds", read=integer(2), default=5, metavar="N")
SEED = Option(
    "--seed",
    "random seed: the same data and options give the same model",
    read=integer(),
    default=0,
    metavar="N",
)
JOBS = Option("--jobs", "parallel jobs, -1: all cores", read=integer(), default=-1, metavar="N")
REQUIRE_SHADOW = Option(
    "--require-shadow",
    "promote only a version that has answered at least N live decisions in shadow "
    "(`triage serve --shadow models/VERSION`), as the decision record shows",
    read=integer(1),
    metavar="N",
)


# The fairness bounds (triage.training.fairness): None keeps the suite's default, so that an
# override is known as one and recorded on the model card.
FAIRNESS_BOUNDS: tuple[Option | Switch, ...] = (
    Option(
        "--fairness-max-spread",
        "largest P(terrorism_concern) spread across identity swaps of one template",
        read=number(0),
        shown_default="0.05",
        metavar="P",
    ),
    Option(
        "--allow-fairness-flips",
        "template/group pairs whose label an identity swap may change",
        read=integer(0),
        shown_default="0",
        metavar="N",
    ),
    Option(
        "--fairness-min-raise",
        "how much threat content must raise P(terrorism_concern), whatever the name",
        read=number(),
        shown_default="0.05",
        metavar="P",
    ),
)


def candidate_name(raw: str) -> str:
    """The name of a known candidate pipeline (read only when the flag is given: listing the
    candidates imports scikit-learn)."""
    from triage.training.candidates import CANDIDATES

    if raw not in CANDIDATES:
        raise BadValue(raw, f"is not a candidate: expected one of {', '.join(CANDIDATES)}")
    return raw


TRAIN_OPTIONS: tuple[Option | Switch, ...] = (
    Option(
        "--data",
        "labelled training file; repeat it to combine files (--data corpus.jsonl --data "
        "reviewed.jsonl): a text in several files is trained on once, from the last file "
        "holding it",
        read=path,
        default=(DEFAULT_TRAIN,),
        repeat=True,
        shown_default=str(DEFAULT_TRAIN),
        metavar="FILE",
    ),
    Option(
        "--test",
        f"held-out test file (default: {DEFAULT_TEST} when {DEFAULT_TRAIN} is a --data file)",
        read=path,
        metavar="FILE",
    ),
    Switch(
        "--allow-conflicts",
        "allow_conflicts",
        "train even when --data files give one text different labels, on the label of the last "
        "file holding it (list reviewers' corrections after the corpus); without it, exit 1",
    ),
    Switch(
        "--drop-leaked",
        "drop_leaked",
        "train without the training rows whose text is also in the test file; without it, "
        "leakage exits 1",
    ),
    Option("--out", "models directory", read=path, default=DEFAULT_MODELS, metavar="DIR"),
    Option("--candidate", "pipeline to train (see `triage compare`)", read=candidate_name),
    FOLDS,
    SEED,
    Option(
        "--target-precision",
        "precision the review threshold must buy",
        read=probability,
        default=0.99,
        metavar="P",
    ),
    Switch("--no-search", "no_search", "skip the hyper-parameter grid"),
    JOBS,
    Option("--version", "version name", shown_default="the UTC time"),
    Switch("--promote", "promote", "promote if it passes the gate"),
    Option(
        "--tolerance",
        "macro-F1 the new model may lose against the current one and still promote",
        read=number(0),
        default=0.01,
        metavar="F1",
    ),
    REQUIRE_SHADOW,
    *FAIRNESS_BOUNDS,
    Switch(
        "--if-missing",
        "if_missing",
        "do nothing when the models directory already has a current model",
    ),
    FORMAT,
)

EVALUATE_OPTIONS: tuple[Option | Switch, ...] = (
    MODEL,
    Option("--data", "labelled CSV or JSONL file", read=path, metavar="FILE"),
    Switch(
        "--fairness",
        "fairness",
        "run the counterfactual fairness suite (identity swaps), with or without --data",
    ),
    *FAIRNESS_BOUNDS,
    FORMAT,
    Option("--plots", "write PNG plots into this directory", read=path, metavar="DIR"),
)

CLASSIFY_OPTIONS: tuple[Option | Switch, ...] = (
    Option("text", "the report text, or '-' to read it from standard input"),
    MODEL,
    Option(
        "--target",
        "ask a running service at HOST:PORT instead of loading the model",
        metavar="HOST:PORT",
    ),
    Option("--top-terms", "explanation terms to show", read=integer(0), default=5, metavar="N"),
    FORMAT,
)

PROMOTE_OPTIONS: tuple[Option | Switch, ...] = (
    Option("version", "the version to make current (a directory name under --models)"),
    Option("--models", "models directory", read=path, default=DEFAULT_MODELS, metavar="DIR"),
    REQUIRE_SHADOW,
    Option(
        "--min-agreement",
        "with --require-shadow: the least share of shadowed decisions with the live label",
        read=probability,
        metavar="P",
    ),
    STORE_OPTION,
)

CONVERT_OPTIONS: tuple[Option | Switch, ...] = (
    Option("version", "the pickled (model.joblib) version to convert"),
    Switch(
        "--trust-pickle",
        "trust_pickle",
        "required: loading the pickle runs any code it holds; only for artifacts you trust",
    ),
    Option(
        "--to", "the new version's name", dest="to", shown_default="VERSION-skops", metavar="NEW"
    ),
    Option("--models", "models directory", read=path, default=DEFAULT_MODELS, metavar="DIR"),
)

COMPARE_OPTIONS: tuple[Option | Switch, ...] = (
    Option("--data", "labelled training file", read=path, default=DEFAULT_TRAIN, metavar="FILE"),
    FOLDS,
    SEED,
    JOBS,
    Option(
        "--candidates", "candidates to compare", read=candidate_name, nargs="*", shown_default="all"
    ),
    Option("--test", "also report test macro-F1 (never used to choose)", read=path, metavar="FILE"),
)

DATA_CHECK_OPTIONS: tuple[Option | Switch, ...] = (
    Option("files", "labelled CSV or JSONL files", read=path, nargs="+", metavar="FILE"),
    Option(
        "--test",
        "the test file: then FILE... are training files to combine (a text in a training file "
        "and the test file is leakage, a text with two labels a conflict, the same text and "
        "label in two training files a warning); without it any text in two files is leakage",
        read=path,
        metavar="FILE",
    ),
    FORMAT,
)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def fairness_bounds(args: argparse.Namespace) -> tuple[FairnessBounds, tuple[str, ...]]:
    """The bounds the options ask for, and those options as given (for the model card)."""
    from triage.training.fairness import FairnessBounds

    given = {
        "max_spread": ("--fairness-max-spread", args.fairness_max_spread),
        "allowed_flips": ("--allow-fairness-flips", args.allow_fairness_flips),
        "min_raise": ("--fairness-min-raise", args.fairness_min_raise),
    }
    chosen = {field: value for field, (_, value) in given.items() if value is not None}
    overrides = tuple(f"{flag} {value}" for flag, value in given.values() if value is not None)
    return FairnessBounds(**chosen), overrides


def run_train(args: argparse.Namespace) -> int:
    from triage.core.artifacts import new_version, resolve_current, write_artifact
    from triage.training.candidates import DEFAULT_CANDIDATE
    from triage.training.corpus import read_labelled
    from triage.training.datacheck import combine_training_files
    from triage.training.fairness import run_suite
    from triage.training.promotion import gate_and_promote
    from triage.training.train import TrainConfig, train

    if args.if_missing and resolve_current(args.out) is not None:
        print(f"{args.out / 'current'} exists: nothing to train")
        return EXIT_OK
    test_path = args.test
    if test_path is None and DEFAULT_TRAIN in args.data and DEFAULT_TEST.exists():
        test_path = DEFAULT_TEST
    files = [read_labelled(p) for p in args.data]
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
        test = read_labelled(test_path, known_labels={r.label for f in files for r in f.rows})
    data = combine_training_files(
        files, test, allow_conflicts=args.allow_conflicts, drop_leaked=args.drop_leaked
    )
    _log_combination(data, test)
    log.info("training %s on %d rows of %s", config.candidate, len(data.rows), data.name)
    result = train(data, test, config)
    version = args.version or new_version()
    bounds, overrides = fairness_bounds(args)
    # Scored on the fitted pipeline, as the card's other figures are.
    fairness = run_suite(result.pipeline.predict_proba, result.card.labels, version, bounds)
    result = replace(result, card=replace(result.card, fairness=fairness.figures(overrides)))
    path = write_artifact(args.out, version, result.pipeline, result.card)
    decision = None
    if args.promote and args.require_shadow is not None:
        from triage.training.promotion import await_shadow_evidence

        decision = await_shadow_evidence(args.out, version, args.require_shadow, fairness)
    elif args.promote:
        if test is None or result.test is None:
            raise TriageError("--promote needs a test file (--test) to compare models on")
        decision = gate_and_promote(
            args.out,
            version,
            result.test.macro_f1,
            test,
            tolerance=args.tolerance,
            fairness=fairness,
        )
    _print_training(args.format, version, path, result, config, test_path, decision, fairness)
    if decision and not decision.promoted:
        raise PromotionRefused(decision.reason)
    return EXIT_OK


def _log_combination(data: TrainingSet, test: LabelledData | None) -> None:
    """Say what combining the --data files left out, and a test file that is a training file."""
    for reason, n in data.set_aside.items():
        if n:
            log.warning("%d training row(s) left out: %s (the model card counts them)", n, reason)
    if test is not None and any(f.sha256 == test.sha256 for f in data.files):
        log.warning(
            "the test file %s is also a training file: its figures measure the fit, not how "
            "the model does on unseen reports",
            test.path,
        )


def _print_training(
    output_format: str,
    version: str,
    path: Path,
    result: TrainResult,
    config: TrainConfig,
    test_path: Path | None,
    decision: GateDecision | None,
    fairness: FairnessReport,
) -> None:
    """What `triage train` prints: the new artifact, its evaluation, its fairness figures and
    the promotion decision."""
    from triage.training.fairness import format_fairness
    from triage.training.metrics import format_report

    if output_format == "json":
        print_json(
            {
                "version": version,
                "path": str(path),
                "metrics": result.card.metrics.to_dict(),
                "review": result.card.review.to_dict(),
                "params": result.card.params,
                "fairness": fairness.to_dict(),
                "promoted": decision.promoted if decision else False,
                "promotion": decision.reason if decision else None,
            }
        )
        return
    print(f"model {version} written to {path} ({result.card.training_seconds:.1f} s)")
    print(f"candidate {config.candidate}, params {result.card.params or 'defaults'}")
    print(format_report(f"cross-validation ({config.folds}-fold, out-of-fold)", result.cv))
    if result.test is not None:
        print(format_report(f"test: {test_path}", result.test))
    print(format_fairness(fairness))
    if decision:
        print(decision.reason)


def run_evaluate(args: argparse.Namespace) -> int:
    from triage.core.model import load_model
    from triage.training.corpus import read_labelled
    from triage.training.fairness import format_fairness, run_suite
    from triage.training.metrics import evaluate, format_report, review_curve
    from triage.training.plots import write_fairness_plots, write_plots, write_review_curve

    if args.data is None and not args.fairness:
        raise TriageError("evaluate needs --data FILE, --fairness, or both")
    model = load_model(args.model)
    evaluation = fairness = None
    curve: list[tuple[float, float, float]] = []
    if args.data is not None:
        data = read_labelled(args.data, known_labels=set(model.labels))
        proba = model.predict_proba(data.texts)
        evaluation = evaluate(data.labels, proba, model.labels, model.review_threshold)
        curve = review_curve(data.labels, proba, model.labels)
    if args.fairness:
        fairness = run_suite(
            model.predict_proba, model.labels, model.version, fairness_bounds(args)[0]
        )
    plots: list[str] = []
    if args.plots is not None:
        if evaluation is not None:
            plots += [str(p) for p in write_plots(evaluation, args.plots)]
            target = model.card.training.review.target_precision
            plots.append(str(write_review_curve(curve, model.review_threshold, args.plots, target)))
        if fairness is not None:
            plots += [str(p) for p in write_fairness_plots(fairness, args.plots)]
    if args.format == "json":
        document: dict[str, Any] = {"model_version": model.version}
        if evaluation is not None:
            document = {**evaluation.to_dict(), **document}
        if fairness is not None:
            document["fairness"] = fairness.to_dict()
        if args.plots is not None:
            document["plots"] = plots
        if curve:
            document["review_curve"] = [
                {"threshold": t, "review_rate": r, "accepted_precision": p} for t, r, p in curve
            ]
        print_json(document)
    else:
        if evaluation is not None:
            print(format_report(f"model {model.version} on {args.data}", evaluation))
            print(_format_curve(curve))
        if fairness is not None:
            print(format_fairness(fairness))
        for plot in plots:
            print(f"wrote {plot}")
    return EXIT_OK


def _format_curve(curve: list[tuple[float, float, float]]) -> str:
    """A few points of the precision / review-rate curve, for choosing a threshold."""
    lines = ["  precision of accepted answers by share reviewed (threshold):"]
    for aim in (0.0, 0.05, 0.10, 0.15, 0.20, 0.30):
        points = [(t, r, p) for t, r, p in curve if r >= aim - 1e-9]
        if points:
            t, r, p = points[-1]  # the least review that reaches the aim
            lines.append(f"    {r:6.1%} reviewed  precision {p:.3f}  (threshold {t:.3f})")
    return "\n".join(lines)


def run_classify(args: argparse.Namespace) -> int:
    from triage.core.model import load_model

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise TriageError("the text is empty: pass the report text or '-' to read standard input")
    if args.target:
        answer = _classify_remote(args.target, text, args.top_terms)
    else:
        from triage.client import classification_of
        from triage.rpc.convert import to_response

        # Through the wire form, so a local answer prints exactly as a served one does.
        p = load_model(args.model).predict([text], top_k=args.top_terms)[0]
        answer = _answer(classification_of(to_response(p, "")))
    if args.format == "json":
        print_json(answer)
        return EXIT_OK
    reasons = ", ".join(answer["review_reasons"])
    review = f"  (needs human review: {reasons})" if answer["needs_review"] else ""
    second = f", then {answer['secondary_label']}" if answer["secondary_label"] else ""
    print(f"{answer['label']}  {answer['confidence']:.3f}{second}{review}")
    for label, score in answer["scores"].items():
        print(f"  {label:<20} {score:.3f}")
    terms = ", ".join(f"{term} ({weight:.3f})" for term, weight in answer["top_terms"])
    print(f"  top terms: {terms or '(none)'}")
    print(f"  language: {answer['language'] or '(undetermined)'}")
    for sentence in answer["evidence_sentences"]:
        quoted = _excerpt(text[sentence["start"] : sentence["end"]])
        print(f"  evidence [{sentence['start']}:{sentence['end']}] {quoted}")
    for item in answer["segments"]:
        marks = f"  ({', '.join(item['review_reasons'])})" if item["review_reasons"] else ""
        headline = _excerpt(text[item["start"] : item["end"]])
        print(
            f"  item [{item['start']}:{item['end']}] {item['label']} "
            f"{item['confidence']:.3f}{marks}  {headline}"
        )
    print(f"  model {answer['model_version']}")
    return EXIT_OK


def _excerpt(text: str, width: int = 70) -> str:
    """One line of at most ``width`` characters from ``text``, for a terminal."""
    line = " ".join(text.split())
    return repr(line if len(line) <= width else line[: width - 1] + "…")


def _answer(c: Any) -> dict[str, Any]:
    """What `triage classify` prints, from the client's Classification (local or remote)."""
    return {
        "label": c.label,
        "confidence": c.confidence,
        "needs_review": c.needs_review,
        "review_reasons": list(c.review_reasons),
        "secondary_label": c.secondary_label,
        "language": c.language,
        "scores": c.scores,
        "top_terms": [list(t) for t in c.explanation],
        "evidence_sentences": [
            {"start": a, "end": b, "weight": w} for a, b, w in c.evidence_sentences
        ],
        "evidence_terms": [
            {"term": t, "start": a, "end": b, "weight": w} for t, a, b, w in c.evidence_terms
        ],
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "label": s.label,
                "confidence": s.confidence,
                "scores": s.scores,
                "review_reasons": list(s.review_reasons),
            }
            for s in c.segments
        ],
        "model_version": c.model_version,
    }


def _classify_remote(target: str, text: str, top_terms: int) -> dict[str, Any]:
    import grpc

    from triage.client import TriageClient

    with TriageClient(target) as client:
        try:
            c = client.classify(text, explanation_terms=top_terms)
        except grpc.RpcError as err:
            raise TriageError(f"{target}: {err.code().name}: {err.details()}") from None
    return _answer(c)


def run_promote(args: argparse.Namespace) -> int:
    from triage.core.artifacts import promote, resolve_current

    reason = "manual"
    if args.min_agreement is not None and args.require_shadow is None:
        raise TriageError("--min-agreement needs --require-shadow N")
    if args.require_shadow is not None:
        from triage.training.shadow_evidence import read_shadow_evidence, require_shadow_evidence

        evidence = read_shadow_evidence(store_url(args), args.version)
        print(evidence.summary())
        require_shadow_evidence(evidence, args.require_shadow, args.min_agreement)
        reason = f"manual; {evidence.summary()}"
    previous = resolve_current(args.models)
    promote(args.models, args.version, reason=reason)
    print(f"current -> {args.version} (was {previous.name if previous else 'none'})")
    return EXIT_OK


def run_convert(args: argparse.Namespace) -> int:
    from triage.core.legacy_artifacts import convert_legacy_artifact

    target = convert_legacy_artifact(
        args.models, args.version, args.to, trust_pickle=args.trust_pickle
    )
    print(f"converted {args.version} to {target.name} ({target}): loads without running code")
    print(f"make it current with: triage promote {target.name}")
    return EXIT_OK


def run_compare(args: argparse.Namespace) -> int:
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


def run_data_check(args: argparse.Namespace) -> int:
    from triage.training.datacheck import check_files, format_check

    report = check_files(args.files, test=args.test)
    if args.format == "json":
        print_json(report.as_dict())
    else:
        print(format_check(report))
    return EXIT_ERROR if report.failed else EXIT_OK
