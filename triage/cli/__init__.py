"""The ``triage`` command line: the one place that reads argv and the environment, sets up
logging and decides exit codes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from triage.cli import (
    feedback_commands,
    model_commands,
    monitor_command,
    review_command,
    sample_command,
    score_command,
    serve_command,
    store_commands,
)
from triage.cli.defaults import EXIT_ERROR, EXIT_NOT_PROMOTED, EXIT_OK, EXIT_USAGE
from triage.cli.options import Command, ConfigError, Option, build_parser, parse_command_line
from triage.core.errors import PromotionRefused, TriageError

TOP_OPTIONS = (
    Option(
        "--log-level",
        "how much to log",
        default="info",
        choices=("debug", "info", "warning", "error"),
    ),
)

COMMANDS = (
    Command(
        "train",
        "train a model, print its evaluation, optionally promote it",
        model_commands.run_train,
        model_commands.TRAIN_OPTIONS,
    ),
    Command(
        "evaluate",
        "evaluate a model on any labelled CSV/JSONL file",
        model_commands.run_evaluate,
        model_commands.EVALUATE_OPTIONS,
    ),
    Command(
        "classify",
        "classify one text (or '-' for standard input)",
        model_commands.run_classify,
        model_commands.CLASSIFY_OPTIONS,
    ),
    Command(
        "promote",
        "make VERSION the current model (promote or roll back)",
        model_commands.run_promote,
        model_commands.PROMOTE_OPTIONS,
    ),
    Command(
        "convert",
        "rewrite a pickled (pre-skops) model version as a safe one, with --trust-pickle",
        model_commands.run_convert,
        model_commands.CONVERT_OPTIONS,
    ),
    Command(
        "compare",
        "compare the candidate pipelines by cross-validation",
        model_commands.run_compare,
        model_commands.COMPARE_OPTIONS,
    ),
    Command(
        "data check",
        "counts, lengths, duplicates and train/test leakage",
        model_commands.run_data_check,
        model_commands.DATA_CHECK_OPTIONS,
    ),
    Command("serve", "run the gRPC service", serve_command.run_serve, serve_command.OPTIONS),
    Command(
        "score",
        "score archives of reports in batch (one machine or Dask)",
        score_command.cmd_score,
        score_command.OPTIONS,
    ),
    Command(
        "monitor",
        "live quality per model version: accuracy against reviewers, review rate, drift",
        monitor_command.run_monitor,
        monitor_command.OPTIONS,
    ),
    Command(
        "store migrate",
        "upgrade the decision record's schema in place",
        store_commands.run_migrate,
        store_commands.MIGRATE_OPTIONS,
    ),
    Command(
        "store status",
        "schema revision, row counts, report texts held, last purge",
        store_commands.run_status,
        store_commands.STATUS_OPTIONS,
    ),
    Command(
        "store purge",
        "delete the report texts past their retention (the purge is recorded)",
        store_commands.run_purge,
        store_commands.PURGE_OPTIONS,
    ),
    Command(
        "store keygen",
        "make a new report-text key (a new key file, mode 600, or standard output)",
        store_commands.run_keygen,
        store_commands.KEYGEN_OPTIONS,
    ),
    Command(
        "store rotate-key",
        "re-encrypt every stored report text under the key file's first key",
        store_commands.run_rotate_key,
        store_commands.ROTATE_OPTIONS,
    ),
    Command(
        "feedback import",
        "record a file of reviewers' corrections (CSV or JSONL), all rows or none",
        feedback_commands.run_import,
        feedback_commands.IMPORT_OPTIONS,
    ),
    Command(
        "feedback export",
        "write reviewed reports that still have their text as a training file",
        feedback_commands.run_export,
        feedback_commands.EXPORT_OPTIONS,
    ),
    Command(
        "review",
        "run the review desk: the needs-review queue, relabelling, live quality",
        review_command.run_review,
        review_command.REVIEW_OPTIONS,
    ),
    Command(
        "reviewer add",
        "add (or reset) a review desk account (password: TRIAGE_REVIEW_PASSWORD or a prompt)",
        review_command.run_add_reviewer,
        review_command.ADD_OPTIONS,
    ),
    Command(
        "review-sample",
        "queue the most uncertain rows of a `triage score` output for the review desk",
        sample_command.run_sample,
        sample_command.OPTIONS,
    ),
)
COMMAND_GROUPS = {
    "data": "labelled-data tools",
    "store": "the decision record's operator tools",
    "feedback": "reviewers' corrections: import them, export them as training data",
    "reviewer": "the review desk's accounts",
}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one ``triage`` command; return its exit code. ``env`` stands in for the process
    environment, which nothing else in the package reads."""
    try:
        args = parse_arguments(argv, os.environ if env is None else env)
    except ConfigError as err:
        print(f"triage: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as stop:  # argparse: --help, or a bad flag (it printed why)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    command: Command = args.command
    try:
        return command.run(args)
    except PromotionRefused as err:
        print(f"triage: not promoted: {err}", file=sys.stderr)
        return EXIT_NOT_PROMOTED
    except TriageError as err:
        print(f"triage: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`triage classify ... | head`): what it wanted it has; say
        # nothing more, and keep Python from complaining again when it flushes at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def parse_arguments(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    """Every option of the command ``argv`` names, from its flag, else ``env``, else its default.
    Raises :class:`ConfigError` for a bad variable; argparse exits 2 for a bad flag."""
    parser = build_parser(COMMANDS, COMMAND_GROUPS, TOP_OPTIONS)
    return parse_command_line(parser, TOP_OPTIONS, argv, env)
