"""Command-line options declared as data, read from argv, then the environment, by one parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from triage.cli.values import BadValue, ValueReader, switch, text


@dataclass(frozen=True)
class Option:
    """A flag with a value (``--port``) or a positional (``inputs``); ``flag=None`` is read only
    from ``env``. The value comes from the flag, else from ``env``, else ``default``."""

    flag: str | None
    help: str
    read: ValueReader[Any] = text
    default: Any = None
    env: str | None = None
    dest: str = ""  # the attribute on the parsed namespace; from the flag when empty
    nargs: str | None = None
    required: bool = False
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    shown_default: str | None = None  # how --help words the default, when str(default) will not do
    repeat: bool = False  # the flag may be given several times; the value is the list of them

    @property
    def key(self) -> str:
        return self.dest or (self.flag or "").lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Switch:
    """A flag without a value that sets ``dest`` to ``sets``; ``env`` may hold the setting itself
    (``TRIAGE_BATCHING=off`` for ``--no-batching``)."""

    flag: str
    dest: str
    help: str
    sets: bool = True
    env: str | None = None

    @property
    def key(self) -> str:
        return self.dest

    @property
    def default(self) -> bool:
        return not self.sets

    @property
    def read(self) -> ValueReader[bool]:
        return switch


@dataclass(frozen=True)
class Command:
    """A command, its options and the function that runs it with the parsed options.
    ``name`` is ``serve``, or ``data check`` for the ``check`` action of the ``data`` group."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    options: tuple[Option | Switch, ...]


class ConfigError(Exception):
    """An environment variable holds a value its option cannot take."""


def build_parser(
    commands: Sequence[Command], groups: Mapping[str, str], top: Sequence[Option]
) -> argparse.ArgumentParser:
    """The ``triage`` parser: ``top`` options, then one sub-command per command; ``groups`` gives
    the help of each command group (``data``)."""
    parser = argparse.ArgumentParser(
        prog="triage", description="Classify public reports and police releases."
    )
    _add_options(parser, top)
    commands_parser = parser.add_subparsers(required=True, metavar="COMMAND")
    group_parsers: dict[str, Any] = {}
    for command in commands:
        *group, name = command.name.split()
        target = commands_parser
        if group:
            if group[0] not in group_parsers:
                group_parsers[group[0]] = commands_parser.add_parser(
                    group[0], help=groups[group[0]]
                ).add_subparsers(required=True, metavar="ACTION")
            target = group_parsers[group[0]]
        sub = target.add_parser(name, help=command.help, description=command.help)
        _add_options(sub, command.options)
        sub.set_defaults(command=command)
    return parser


def parse_command_line(
    parser: argparse.ArgumentParser,
    top: Sequence[Option],
    argv: Sequence[str] | None,
    env: Mapping[str, str],
) -> argparse.Namespace:
    """Parse ``argv``, then fill every option not given as a flag from ``env`` or its default.
    Bad flags exit through argparse; a bad variable raises :class:`ConfigError`."""
    args = parser.parse_args(argv)
    command: Command = args.command
    for option in (*top, *command.options):
        if not hasattr(args, option.key):  # not on the command line: flags win
            setattr(args, option.key, _from_environment(option, env))
    return args


def _from_environment(option: Option | Switch, env: Mapping[str, str]) -> Any:
    raw = env.get(option.env, "") if option.env else ""
    if not raw:  # unset and set-but-empty both mean "not configured"
        return option.default
    try:
        value = option.read(raw)
    except BadValue as err:
        raise ConfigError(f"{option.env}={err.raw!r} {err.problem}") from None
    if isinstance(option, Option) and option.choices and value not in option.choices:
        raise ConfigError(f"{option.env}={raw!r} is not one of {', '.join(option.choices)}")
    return value


def _add_options(parser: argparse.ArgumentParser, options: Sequence[Option | Switch]) -> None:
    for option in options:
        if option.flag is None:
            continue  # environment only
        # SUPPRESS leaves an option that was not given off the namespace, so that
        # parse_command_line can tell "not given" from "given the default".
        if isinstance(option, Switch):
            parser.add_argument(
                option.flag,
                dest=option.key,
                action="store_const",
                const=option.sets,
                default=argparse.SUPPRESS,
                help=_help(option),
            )
            continue
        # argparse names a positional by its flag and will not take dest or required for it.
        named: dict[str, Any] = {"dest": option.key, "required": option.required}
        parser.add_argument(
            option.flag,
            **(named if option.flag.startswith("-") else {}),
            type=option.read,
            nargs=option.nargs,
            choices=option.choices or None,
            metavar=option.metavar,
            action="append" if option.repeat else "store",
            default=argparse.SUPPRESS,
            help=_help(option),
        )


def _help(option: Option | Switch) -> str:
    notes = []
    if option.env and isinstance(option, Switch):
        notes.append(f"env {option.env}={'1' if option.sets else 'off'}")
    elif option.env:
        notes.append(f"env {option.env}")
    if isinstance(option, Option) and (option.shown_default or option.default is not None):
        notes.append(f"default: {option.shown_default or _shown(option.default)}")
    described = f"{option.help} ({'; '.join(notes)})" if notes else option.help
    return described.replace("%", "%%")  # argparse %-formats help strings


def _shown(default: object) -> str:
    # 10.0 seconds reads better as 10
    return f"{default:g}" if isinstance(default, float) else str(default)
