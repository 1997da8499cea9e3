"""Split CSV lines into records, each with the line it starts on and, if malformed, why; reading
goes on after a malformed record from the line after its first, so an unclosed quote cannot
swallow the rows that follow it."""

from __future__ import annotations

import csv
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from triage.archive.input_files import MAX_ROW_SIZE


@dataclass(frozen=True)
class CsvRecord:
    """One record. ``problem`` says why it is malformed; then ``fields`` is empty and
    ``first_line`` holds its first physical line (for a best-effort id)."""

    line: int  # the physical line it starts on, 1-based
    fields: list[str]
    problem: str | None = None
    first_line: str = ""


class _TooLong(Exception):
    """The record grew past the size limit (or met a line that did)."""


class _IntoBadRecord(Exception):
    """The record's quoted field continues into lines a malformed record already spanned."""


class _Feed:
    """The lines ``csv.reader`` reads: from the file, or put back after a malformed record.
    Remembers which lines the current record took."""

    def __init__(self, lines: Iterable[str | None], limit: int) -> None:
        self._lines = iter(lines)
        self._back: deque[tuple[int, str | None]] = deque()
        self._read = 0
        self._limit = limit
        self._chars = 0
        self.taken: list[tuple[int, str | None]] = []
        # Lines up to here lie inside a malformed record that spanned several lines, which
        # started on line bad_start.
        self.bad_until = 0
        self.bad_start = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        # Asked for another line while a record has one: the record's quoted field goes on.
        # Inside a malformed record's lines it would follow that record's path from here on
        # and fail where it failed, so it fails now (which keeps reading linear).
        if self.taken and self.taken[-1][0] < self.bad_until:
            raise _IntoBadRecord
        if self._back:
            number, line = self._back.popleft()
        else:
            line = next(self._lines)  # StopIteration: the end of the file, for csv.reader
            self._read += 1
            number = self._read
        self.taken.append((number, line))
        if line is None:
            raise _TooLong
        self._chars += len(line)
        if self._chars > self._limit:
            raise _TooLong
        return line

    def start_record(self) -> None:
        self.taken = []
        self._chars = 0

    def reread_after_first(self) -> None:
        """Put back every line the current record took but its first."""
        self._back.extendleft(reversed(self.taken[1:]))


class CsvRecords:
    """The records of CSV ``lines`` (each with its line end; None for a line over the limit).

    A record is malformed when a closing quote is followed by anything but a comma or the
    line end, when the file ends inside a quoted field, when it is longer than ``limit``
    characters, or when ``width`` is set and its field count differs. A malformed record is
    reported, and reading restarts on the line after its first, so each line that an unclosed
    quote swallowed is read again as the record it was meant to be.
    """

    def __init__(self, lines: Iterable[str | None], limit: int = MAX_ROW_SIZE) -> None:
        # csv's own per-field limit would fire before ours, with a less useful message.
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        self._feed = _Feed(lines, limit)
        self._reader = csv.reader(self._feed, strict=True)
        self._limit = limit
        self.width: int | None = None  # the header's field count, once it is known

    def __iter__(self) -> Iterator[CsvRecord]:
        feed = self._feed
        while True:
            feed.start_record()
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as err:
                problem = self._quoting_problem(str(err))
            except _TooLong:
                problem = self._too_long()
            except _IntoBadRecord:
                problem = (
                    "unclosed quote: its quoted field runs into the malformed record on "
                    f"line {feed.bad_start}"
                )
            else:
                if not fields:
                    continue  # a blank line
                if self.width is None or len(fields) == self.width:
                    yield CsvRecord(feed.taken[0][0], fields)
                    continue
                n = len(fields)
                problem = f"{n} field{'' if n == 1 else 's'} where the header has {self.width}" + (
                    f" ({self._span()}: an unclosed quote?)" if self._spans_lines() else ""
                )
            yield self._malformed(problem)

    def _malformed(self, problem: str) -> CsvRecord:
        feed = self._feed
        start, first = feed.taken[0]
        if self._spans_lines():
            last = feed.taken[-1][0]
            if last > feed.bad_until:
                feed.bad_until, feed.bad_start = last, start
            feed.reread_after_first()
        return CsvRecord(start, [], problem, first or "")

    def _spans_lines(self) -> bool:
        return len(self._feed.taken) > 1

    def _span(self) -> str:
        first, last = self._feed.taken[0][0], self._feed.taken[-1][0]
        return f"lines {first}-{last}" if last > first else f"line {first}"

    def _quoting_problem(self, message: str) -> str:
        if message == "unexpected end of data":
            return f"unclosed quote: the file ends inside a quoted field ({self._span()})"
        if self._spans_lines():
            return f"unclosed quote? a quoted field runs over {self._span()} and ends malformed"
        if message == "',' expected after '\"'":
            return "malformed quoting: text after a closing quote"
        return f"malformed CSV ({message})"

    def _too_long(self) -> str:
        if not self._spans_lines():
            return f"line longer than {self._limit:,} characters"
        return f"record longer than {self._limit:,} characters ({self._span()}: an unclosed quote?)"
