"""Open one archive file for reading (plain or gzip), in lines of bounded length, its read
faults raised as a DataFileError that names it."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, AnyStr

from triage.core.errors import DataFileError

MAX_ROW_SIZE = 8 * 1024 * 1024  # a CSV record or JSONL line (with its line end), a .txt file

# A line end inside a line that readline() returned: "\r" too for text read with newline="".
_LINE_ENDS: dict[type, tuple[str, ...] | tuple[bytes, ...]] = {
    str: ("\n", "\r"),
    bytes: (b"\n",),
}


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed if its name ends in .gz."""
    try:
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
        return path.open("rb")
    except OSError as err:
        raise DataFileError(path, f"cannot open ({err.strerror or err})") from None


@contextmanager
def read_faults_named(path: Path) -> Iterator[None]:
    """Turn what reading ``path`` can raise (a cut or corrupt gzip stream, an I/O error) into a
    :class:`DataFileError` naming it: a file that cannot be read stops the run with a message,
    not a traceback."""
    try:
        yield
    except EOFError:
        raise DataFileError(path, "the gzip stream ends early (a truncated file?)") from None
    except gzip.BadGzipFile as err:
        raise DataFileError(path, f"not a valid gzip file ({err})") from None
    except zlib.error as err:
        raise DataFileError(path, f"corrupt gzip data ({err})") from None
    except OSError as err:
        raise DataFileError(path, f"cannot read ({err.strerror or err})") from None


def bounded_lines(stream: IO[AnyStr], limit: int = MAX_ROW_SIZE) -> Iterator[AnyStr | None]:
    """Each line of ``stream`` with its line end, or None for a line longer than ``limit`` (read
    past in pieces, never held whole): one huge line cannot exhaust memory."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit:
            yield line
            continue
        ends = _LINE_ENDS[type(line)]
        while line and not line.endswith(ends):  # type: ignore[arg-type]
            line = stream.readline(65_536)
        yield None
