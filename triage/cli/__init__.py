"""The ``triage`` command line: the one place that reads argv, sets up logging and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from triage.cli import model_commands, score_command, serve_command
from triage.cli.common import EXIT_ERROR, EXIT_NOT_PROMOTED
from triage.core.errors import PromotionRefused, TriageError


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
    model_commands.add_parsers(sub, env)
    serve_command.add_parser(sub, env)
    score_command.add_parser(sub, env)
    return parser
