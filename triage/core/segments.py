"""Find the items of a document that holds several stories: listing pages, newsletters, digests.

``find_items(text)`` returns the character offsets ``(start, end)`` into ``text`` of each item
(``text[start:end]`` is the item, headline through teaser or body), in order and non-overlapping,
when ``text`` repeats an item structure at least ``MIN_ITEMS`` times; otherwise ``[]``.

The text is read line by line (lines end at ``"\\n"``; a trailing ``"\\r"`` is ignored). Every
regular expression runs on one line of bounded length (at most ``MAX_HEAD_CHARS``), or is a
line-start scan with possessive quantifiers only, so the cost is linear in the text's length.

Anchor lines (each must stand on its own line; a date or "by" inside a sentence is never one):

* byline: ``by`` alone (the name lines straight under it belong to it), or ``By Name``, then
  optionally parts after ``,``, ``|``, ``·``, ``•``, a dash or `` on ``, each a date, a time or a
  short capitalised role (``By Jane Doe, 19 Dec 2017``, ``Posted by J. Smith | Crime reporter``).
  The name is one to six capitalised words (``and``, ``&``, ``de``, ``van``... allowed), so
  ``By sharing this we...`` or ``By then the van...`` is not a byline.
* date: the line starts with a date, optionally after ``Published``/``Posted``/``Updated``/
  ``Date`` and a day name, optionally followed by a time and short parts after ``|``, ``·`` or a
  dash: ``12.19.2017``, ``19/12/2017``, ``2017-12-19``, ``19 December 2017``,
  ``December 19, 2017``, ``Tuesday 19 Dec``, ``Tue, 19 Dec 2017 10:32 GMT``, ``3 hours ago``.
  A month and year alone (``December 2017``, an archive heading) is not a date line, nor is
  ``Jane Doe | 19 Dec 2017`` (a date line starts with its date).
* numbered line: ``1. Headline``, ``2) Headline``, ``(3) Headline``, ``#4 Headline`` (1-3 digits).
* separator: three or more of ``- * = _ ~ # • ·`` and nothing else (spaces allowed). A separator
  straight under a text line underlines a heading and separates nothing.
* bullet line: one of ``• · ▪ ● ■ ◦ ‣ ▶ ►``, or ``-``, ``*``, ``+``, an en or em dash and a space,
  then text.

No line longer than ``MAX_HEAD_CHARS`` is an anchor or a headline; byline and date lines are at
most ``MAX_META_CHARS`` long.

Item structures, each tried in turn; the one giving the most valid items wins (earlier on ties):

1. byline/date blocks, headline above: a block is a run of byline and date lines (blank lines
   inside allowed). The item starts at its headline: the paragraph just above the block (blank
   lines skipped) when it has at most ``MAX_HEAD_LINES`` lines, else only the line just above
   it. Without a headline above, the item starts at the block itself.
2. byline/date blocks, date first: the item starts at the block, its headline is the first line
   under the block (archives that print the date over the headline).
3. numbered digest: the longest run of numbered lines counting up by one (1, 2, 3...; numbered
   lists inside an item do not break the run); each item starts at its numbered line.
4. separators: the stretches between separator lines; an item is a stretch whose first line is
   a headline and whose body is long enough (the others, a header or footer, are left out).
5. bullet-led items: each bullet line with a body under it starts an item; a bullet without one
   (a line of a list of advice) stays in the item above it.

An item is valid when its body — its text beyond the headline, byline, date and separator lines,
counted in non-space characters — holds at least ``MIN_BODY_CHARS``. A structure counts only with
at least ``MIN_ITEMS`` valid items, and for structures 1-3 when at least half of its anchors are
valid (the others stay items of their own: a listing entry without teaser). Consequences:

* a release with one byline and date, prose with dates in its sentences, a bullet list of advice
  (``• lock your car`` / ``• don't share PINs``) inside one release: never split;
* numbered steps in a first-person report (``1. I got a call`` / ``2. they asked for my PIN``)
  are not items: each step is one line with no body under it. Numbered paragraphs whose text
  goes on over further lines (a headline line then a body) do look like a digest and are split.

Offsets: an item starts at the first character of its first line, after any indentation and any
bullet glyph (a number is kept: ``1. Headline``); it ends at the end of its last non-blank line,
leaving out trailing separators and, before the next item, a lone short bullet line (an image
credit such as ``• Reuters`` that belongs to the next item). Text before the first item (site
name, "Latest") is left out; text after the last item stays in it unless a separator closes it.

Cheap on ordinary documents: fewer than ``2 * MIN_ITEMS - 1`` newlines, or fewer than
``MIN_ITEMS`` lines starting like an anchor, returns ``[]`` at once.

Limits: stories run together with no byline, date, number, separator or bullet between them
(two releases pasted one after the other) are one document here; a release whose advice is a
list of bullet or numbered headings each with a paragraph under it reads as a newsletter or
digest; in a listing with no blank line between a teaser and the next headline, a teaser of at
most three short lines right under a block may be taken for that next headline only when a
blank line sits above it. Lines end at ``"\n"`` only (``"\r"`` alone or U+2028 do not end one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

__all__ = ["MIN_BODY_CHARS", "MIN_ITEMS", "find_items"]

MIN_ITEMS: Final = 3
MIN_BODY_CHARS: Final = 60
MAX_HEAD_CHARS: Final = 200  # a longer line is body text, never a headline or an anchor
MAX_HEAD_LINES: Final = 3
MAX_META_CHARS: Final = 120  # byline and date lines are short
MAX_CREDIT_CHARS: Final = 80  # a lone bullet line this short before an item is its image credit

# Line kinds. Blank lines are not kept: a kept line knows whether a blank line is above it.
_TEXT: Final = 0
_SEP: Final = 1
_BY: Final = 2  # "by" alone
_BYLINE: Final = 3  # "By Name", with an optional date or role
_DATE: Final = 4
_NUM: Final = 5
_BULLET: Final = 6
_META = frozenset((_BY, _BYLINE, _DATE))
_HEADABLE = frozenset((_TEXT, _NUM, _BULLET))

_SP = r"[ \t\xa0]"
# What an anchor line starts with (after indentation): the fast exit counts such lines.
_ANCHOR_START = (
    r"(?:[\d#(\-*=_~+•·▪●■◦‣▶►–—]"
    r"|(?i:by|posted|published|updated|written|words|story|reported|date|last"
    r"|mon|tue|wed|thu|fri|sat|sun|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))"
)
# The look-ahead on the first character alone makes a failing line start cheap.
_CANDIDATE = re.compile(
    r"^[^\S\n]*+(?=[\d#(\-*=_~+•·▪●■◦‣▶►–—abdfjlmnoprstuwABDFJLMNOPRSTUW])" + _ANCHOR_START,
    re.MULTILINE,
)

_DOW = r"(?:mon|tues|tue|wednes|wed|thurs|thur|thu|fri|satur|sat|sun)(?:day)?+\.?+"
_MON = (
    r"(?:jan(?:uary)?+|feb(?:ruary)?+|mar(?:ch)?+|apr(?:il)?+|may|june?+|july?+|aug(?:ust)?+"
    r"|sep(?:t(?:ember)?+)?+|oct(?:ober)?+|nov(?:ember)?+|dec(?:ember)?+)\.?+"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?+"
_YEAR = r"(?:\d{4}|'\d{2})"
_DATE_CORE = (
    r"(?:\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})|\d{4}[./-]\d{1,2}[./-]\d{1,2}"
    rf"|(?:{_DOW},?+{_SP}++)?+(?:{_DAY}{_SP}++(?:of{_SP}++)?+{_MON}(?:,?+{_SP}++{_YEAR})?+"
    rf"|{_MON}{_SP}++{_DAY}(?:,?+{_SP}++{_YEAR})?+)"
    rf"|\d{{1,2}}{_SP}++(?:minutes?+|mins?+|hours?+|hrs?+|days?+|weeks?+){_SP}++ago)"
)
_TIME = (
    r"(?:t?+\d{1,2}[:.]\d{2}(?::\d{2})?+(?:z|[+-]\d{2}:?+\d{2})?+"
    rf"(?:{_SP}*+[ap]\.?+m\.?+)?+(?:{_SP}++[a-z]{{2,4}})?+)"
)
_DATE_PREFIX = (
    rf"(?:(?:published|posted|updated|last{_SP}++updated|date|dated)(?:{_SP}++on)?+:?+{_SP}*+)?+"
)
_DATE_SRC = rf"{_DATE_PREFIX}{_DATE_CORE}(?:,?+{_SP}*+(?:at{_SP}++)?+{_TIME})?+"
_BULLET_SRC = r"(?:[•·▪●■◦‣▶►]" + _SP + r"*+|[-*+–—]" + _SP + r"++)(?=\S)"

# One match per stripped line tells its kind; the branch that matched is the group's name.
_LINE = re.compile(
    r"(?P<sep>(?:[-*=_~#•·─━][ \t]*+){3,}+\Z)"
    rf"|(?P<by>(?:(?:posted|written|words|story|reported|report){_SP}++)?+by(?![^\W\d_]){_SP}*+:?+"
    rf"{_SP}*+)"
    rf"|(?P<date>{_DATE_SRC}[ \t\xa0.,]*+)"
    r"|(?P<num>(?:(\d{1,3})[.)]|#(\d{1,3})[.:)]?+|\((\d{1,3})\))\s++\S)"
    rf"|(?P<bullet>{_BULLET_SRC})",
    re.IGNORECASE,
)
_BULLET_START = re.compile(_BULLET_SRC)
# Tried only where a run of blanks starts (or at a separator), so a long run of blanks is
# scanned once, not once from each of its positions.
_PART_SPLIT = re.compile(rf"(?<!{_SP})(?:{_SP}*+[,|·•–—]{_SP}*+|{_SP}++(?:-|on){_SP}++)")
_DATE_PART = re.compile(rf"{_DATE_SRC}\.?+|{_TIME}", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_NAME_LINKS = frozenset(
    {
        *("and", "&", "de", "van", "von", "der", "den", "la", "le", "di", "da", "du", "del"),
        *("dos", "bin", "al", "el", "st.", "y", "of", "the"),
    }
)


def _is_name(part: str) -> bool:
    """One to six capitalised words (a person, a desk or a role), with linking words allowed."""
    words = part.split()
    if not 1 <= len(words) <= 6 or len(part) > 60 or _DIGIT.search(part):
        return False
    capitalised = 0
    for word in words:
        if word.lower() in _NAME_LINKS:
            continue
        if len(word) > 25 or not word[0].isupper():
            return False
        capitalised += 1
    return capitalised > 0 and words[-1].lower() not in _NAME_LINKS


def _is_tail_part(part: str) -> bool:
    """What may follow a byline's name or a date: a date, a time, a name, a desk or a role."""
    if not part or _DATE_PART.fullmatch(part):
        return True
    words = part.split()
    return (
        len(part) <= 40
        and len(words) <= 5
        and part[0].isupper()
        and part[-1] not in ".!?:;"
        and not _DIGIT.search(part)
    )


def _classify(line: str) -> tuple[int, int]:
    """The kind of one stripped, non-empty line (and its number, for a numbered line)."""
    if len(line) > MAX_HEAD_CHARS:
        return _TEXT, 0
    match = _LINE.match(line)
    if match is None:
        return _TEXT, 0
    branch = match.lastgroup
    if branch == "sep":
        return _SEP, 0
    if branch == "num":
        return _NUM, int(match.group(5) or match.group(6) or match.group(7))
    if branch == "bullet":
        return _BULLET, 0
    if len(line) > MAX_META_CHARS:
        return _TEXT, 0
    rest = line[match.end() :]
    if branch == "by":
        if not rest:
            return _BY, 0
        parts = _PART_SPLIT.split(rest)
        if _is_name(parts[0]) and all(_is_tail_part(p) for p in parts[1:]):
            return _BYLINE, 0
        return _TEXT, 0
    # A date, then nothing or short parts after a separator: a time, a desk, a name.
    if not rest:
        return _DATE, 0
    if rest[0] in "|·•–—-":
        parts = _PART_SPLIT.split(rest.lstrip("|·•–—- \t\xa0"))
        if all(_is_tail_part(p) for p in parts):
            return _DATE, 0
    return _TEXT, 0


class _Lines:
    """The non-blank lines of a text: offsets, stripped text, kind, number, blank line above."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.firsts: list[int] = []  # offset of the first non-space character
        self.ends: list[int] = []  # offset just past the last non-space character
        self.stripped: list[str] = []
        self.kinds: list[int] = []
        self.numbers: list[int] = []
        self.blank_above: list[bool] = []  # a blank line (or the start of the text) above
        cache: dict[str, tuple[int, int]] = {}  # hostile texts repeat their lines
        add_first, add_end, add_stripped = (
            self.firsts.append,
            self.ends.append,
            self.stripped.append,
        )
        add_kind, add_number, add_blank = (
            self.kinds.append,
            self.numbers.append,
            self.blank_above.append,
        )
        pos = 0
        blank = True
        for raw in text.split("\n"):
            stripped = raw.strip()
            if stripped:
                kind, number = cache.get(stripped) or cache.setdefault(
                    stripped, _classify(stripped)
                )
                # The first non-space character of ``raw`` is the first of ``stripped``.
                first = pos + raw.find(stripped[0])
                add_first(first)
                add_end(first + len(stripped))
                add_stripped(stripped)
                add_kind(kind)
                add_number(number)
                add_blank(blank)
                blank = False
            else:
                blank = True
            pos += len(raw) + 1

    def __len__(self) -> int:
        return len(self.kinds)

    def body_chars(self, lo: int, hi: int, skip_first: bool = False) -> int:
        """Non-space characters of the text lines in [lo, hi), anchors and separators left out."""
        total = 0
        for k in range(lo, hi):
            if self.kinds[k] in _HEADABLE:
                if skip_first:
                    skip_first = False
                    continue
                line = self.stripped[k]
                total += len(line) - line.count(" ")
        return total

    def start_offset(self, k: int) -> int:
        """Offset of line k's first character, after any bullet glyph."""
        if self.kinds[k] == _BULLET:
            bullet = _BULLET_START.match(self.text, self.firsts[k], self.ends[k])
            if bullet is not None:
                return bullet.end()
        return self.firsts[k]


def _spans(
    lines: _Lines,
    first_lines: Sequence[int],
    ends: Sequence[int],
    floors: Sequence[int],
    *,
    trim_credit: bool,
) -> list[tuple[int, int]]:
    """Offsets of items starting at ``first_lines`` and ending before the ``ends`` lines.

    Trailing separator lines are left out; with ``trim_credit``, so is a lone short bullet line
    just before the next item. No trimming goes above the ``floors`` line.
    """
    kinds = lines.kinds
    spans: list[tuple[int, int]] = []
    for i, first in enumerate(first_lines):
        last = ends[i] - 1
        floor = floors[i]
        while last > floor and kinds[last] == _SEP:
            last -= 1
        if (
            trim_credit
            and i + 1 < len(first_lines)
            and last > floor
            and kinds[last] == _BULLET
            and lines.blank_above[last]
            and len(lines.stripped[last]) <= MAX_CREDIT_CHARS
        ):
            last -= 1
            while last > floor and kinds[last] == _SEP:
                last -= 1
        start = lines.start_offset(first)
        end = lines.ends[last]
        if end > start:
            spans.append((start, end))
    return spans


def _meta_blocks(lines: _Lines) -> list[tuple[int, int]]:
    """Runs of byline and date lines (and the names under a lone "by"), as (first, last) line."""
    kinds = lines.kinds
    blocks: list[tuple[int, int]] = []
    n = len(lines)
    i = 0
    while i < n:
        if kinds[i] not in _META:
            i += 1
            continue
        last = i
        names_left = 3 if kinds[i] == _BY else 0
        j = i + 1
        while j < n:
            kind = kinds[j]
            if kind in _META:
                names_left = 3 if kind == _BY else 0
            elif names_left and not lines.blank_above[j] and _is_name(lines.stripped[j]):
                names_left -= 1
            else:
                break
            last = j
            j += 1
        blocks.append((i, last))
        i = last + 1
    return blocks


def _head_above(lines: _Lines, block_first: int, floor: int) -> int:
    """First line of the headline just above a block, or -1; ``floor`` is the last line not ours."""
    kinds, blank_above = lines.kinds, lines.blank_above
    k = block_first - 1
    if k <= floor or kinds[k] not in _HEADABLE:
        return -1
    top = k
    while (
        k - top < MAX_HEAD_LINES - 1
        and not blank_above[top]
        and top - 1 > floor
        and kinds[top - 1] in _HEADABLE
    ):
        top -= 1
    # The whole paragraph is the headline only when a blank line, a separator or the start of
    # the text is above it: right under a byline block, it starts with the body of the item
    # before; longer than MAX_HEAD_LINES, it is a body.
    stands_alone = blank_above[top] or kinds[top - 1] == _SEP
    return top if stands_alone else k


def _qualifies(valid: int, anchors: int) -> bool:
    return valid >= MIN_ITEMS and 2 * valid >= anchors


def _by_meta_blocks(
    lines: _Lines, blocks: Sequence[tuple[int, int]], head_above: bool
) -> tuple[int, list[tuple[int, int]]]:
    if len(blocks) < MIN_ITEMS:
        return 0, []
    firsts: list[int] = []
    headed: list[bool] = []
    floor = -1
    for first, last in blocks:
        top = _head_above(lines, first, floor) if head_above else -1
        firsts.append(top if top >= 0 else first)
        headed.append(top >= 0)
        floor = last
    ends = [*firsts[1:], len(lines)]
    valid = 0
    for i, (_, last) in enumerate(blocks):
        headline_under = not headed[i]
        if headline_under and (last + 1 >= ends[i] or lines.kinds[last + 1] not in _HEADABLE):
            continue
        if lines.body_chars(last + 1, ends[i], skip_first=headline_under) >= MIN_BODY_CHARS:
            valid += 1
    if not _qualifies(valid, len(blocks)):
        return 0, []
    floors = [last for _, last in blocks]
    return valid, _spans(lines, firsts, ends, floors, trim_credit=True)


def _numbered(lines: _Lines) -> tuple[int, list[tuple[int, int]]]:
    kinds, numbers = lines.kinds, lines.numbers
    # The longest chain of numbered lines counting up by one. For each number, the best chain
    # ending there so far (length, line); an earlier chain wins a tie, so a list numbered
    # 1, 2 inside item 2 of a digest does not take the place of the digest's own 2.
    best_by_number: dict[int, tuple[int, int]] = {}
    previous: dict[int, int] = {}
    best_len, best_end = 0, -1
    for k, kind in enumerate(kinds):
        if kind != _NUM:
            continue
        number = numbers[k]
        before = best_by_number.get(number - 1)
        length = before[0] + 1 if before is not None else 1
        previous[k] = before[1] if before is not None else -1
        if number not in best_by_number or length > best_by_number[number][0]:
            best_by_number[number] = (length, k)
        if length > best_len:
            best_len, best_end = length, k
    if best_len < MIN_ITEMS:
        return 0, []
    chain: list[int] = []
    k = best_end
    while k >= 0:
        chain.append(k)
        k = previous[k]
    chain.reverse()
    ends = [*chain[1:], len(lines)]
    valid = sum(
        lines.body_chars(first + 1, ends[i]) >= MIN_BODY_CHARS for i, first in enumerate(chain)
    )
    if not _qualifies(valid, len(chain)):
        return 0, []
    return valid, _spans(lines, chain, ends, chain, trim_credit=False)


def _separated(lines: _Lines) -> tuple[int, list[tuple[int, int]]]:
    kinds = lines.kinds
    n = len(lines)
    # A separator right under a text line underlines a heading.
    cuts = [
        k
        for k, kind in enumerate(kinds)
        if kind == _SEP and (lines.blank_above[k] or kinds[k - 1] == _SEP)
    ]
    if len(cuts) < MIN_ITEMS - 1:
        return 0, []
    firsts: list[int] = []
    ends: list[int] = []
    for lo, hi in zip([-1, *cuts], [*cuts, n], strict=True):
        k = lo + 1
        if k < hi and kinds[k] in _HEADABLE and lines.body_chars(k + 1, hi) >= MIN_BODY_CHARS:
            firsts.append(k)
            ends.append(hi)
    if len(firsts) < MIN_ITEMS:
        return 0, []
    return len(firsts), _spans(lines, firsts, ends, firsts, trim_credit=False)


def _bulleted(lines: _Lines) -> tuple[int, list[tuple[int, int]]]:
    kinds = lines.kinds
    anchors = [k for k, kind in enumerate(kinds) if kind == _BULLET]
    if len(anchors) < MIN_ITEMS:
        return 0, []
    ends = [*anchors[1:], len(lines)]
    # A bullet without a body under it stays in the item above (or before the first item).
    firsts = [
        first
        for i, first in enumerate(anchors)
        if lines.body_chars(first + 1, ends[i]) >= MIN_BODY_CHARS
    ]
    if len(firsts) < MIN_ITEMS:
        return 0, []
    item_ends = [*firsts[1:], len(lines)]
    return len(firsts), _spans(lines, firsts, item_ends, firsts, trim_credit=False)


def find_items(text: str) -> list[tuple[int, int]]:
    """Offsets ``(start, end)`` into ``text`` of each item of a multi-item document, else ``[]``.

    The rules are in this module's docstring. Never raises on any ``str``; linear time.
    """
    # Each item needs at least a headline line and a body line.
    if text.count("\n") < 2 * MIN_ITEMS - 1:
        return []
    for count, _ in enumerate(_CANDIDATE.finditer(text), 1):
        if count >= MIN_ITEMS:
            break
    else:
        return []
    lines = _Lines(text)
    blocks = _meta_blocks(lines)
    best_valid, best = 0, []
    for valid, spans in (
        _by_meta_blocks(lines, blocks, head_above=True),
        _by_meta_blocks(lines, blocks, head_above=False),
        _numbered(lines),
        _separated(lines),
        _bulleted(lines),
    ):
        if valid > best_valid and len(spans) >= MIN_ITEMS:
            best_valid, best = valid, spans
    return best
