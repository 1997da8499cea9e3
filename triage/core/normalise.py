"""Clean raw report text the same way in training and serving (first step of the pipeline)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin

from triage.core.identity import corpus_words, mask_identity_terms

DEFAULT_MAX_CHARS = 20_000

# Whole lines of web clutter that scraped releases carry. A line is dropped only when it is
# clutter through and through, so a sentence that merely mentions "cookies" survives.
#
# These patterns run on every line of every report, so no line may make them slow. Each is
# written so that a character can be matched in one way only: possessive quantifiers (``*+``,
# ``++``, ``?+``) and atomic groups ``(?>...)`` keep what they took, and no two neighbouring
# quantifiers can trade characters. Matching is then linear in the line's length (the nested
# ``(?:\s*[|/·•,]\s*\S+)*`` this replaced took seconds on "share,x,x,...,x a").
# tests/test_hostile_text.py checks these make the same decisions as those earlier patterns.

# A share bar ("Facebook | Twitter / Email"): a keyword, then items that each start with a
# separator, then trailing punctuation. An item's word may hold separators ("a/b"), and a
# separator inside one may start the next item, so whitespace is allowed after it. Each item
# is matched greedily as far as it goes; only the last one may end without whitespace.
_SEPARATOR = "|/·•,"
_ITEM = rf"\S [^\s{_SEPARATOR}]*+ (?: [{_SEPARATOR}] [\s{_SEPARATOR}]*+ [^\s{_SEPARATOR}]*+ )*+"
_SHARE_BAR_TAIL = rf"""
    \s*+
    (?: [{_SEPARATOR}] \s*+ {_ITEM} \s++ )*+
    (?: [{_SEPARATOR}] \s*+ (?: {_ITEM} )?+  # the last item, if the line ends in one
      | [^\w\s{_SEPARATOR}] \W*+             # or trailing punctuation
    )?+"""
_CLUTTER_LINES = re.compile(
    rf"""^(?:
        (?:share|tweet|email|print|copy\ link|facebook|twitter|x|whatsapp|linkedin|reddit
           |pinterest|messenger|telegram) {_SHARE_BAR_TAIL}
      | (?: share\ (?:this|on|via)
          | (?:related|more|latest|popular|top|trending)\ (?:stories|articles|news|content|posts)
          | read\ more | most\ read | you\ may\ also\ like | recommended\ for\ you | see\ also
          | have\ your\ say | leave\ a\ (?:comment|reply) | (?:post|add)\ (?:a|your)\ comment
          | (?:sign\ in|log\ in|register)\ to\ (?:comment|reply|continue)
          | have\ you\ got\ a\ story\ for\ us
          | (?:sign\ up|subscribe)\b (?>.*?\bnewsletter\b)  # its first mention decides
          | (?:follow|like)\ us\ on
          | (?:accept|reject|manage)\ (?:all\ )?+cookies?+
        )\b .*+ \W*+
      | (?:your\ )?+(?:name|e-?mail(?:\ address)?+|comment|website) \W*+  # form labels
      | (?:submit|post)(?:\ comment)?+ \W*+
      | comments?+ (?:\s*+\(\d++\))?+ \W*+
      | \d++\ comments?+ \W*+
      | (?:skip\ to\ (?:main\ )?+content | back\ to\ top
          | main\ menu | menu | home | search | close | advertisement) \W*+
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# Cookie banners run to a full sentence or two; any line that is mostly about cookies goes.
_COOKIE_BANNER = re.compile(
    r"\b(?:we\ use\ cookies|this\ (?:web)?site\ uses\ cookies"
    r"|cookie\ (?:policy|settings|preferences)|accept\ (?:all\ )?cookies)\b",
    re.IGNORECASE | re.VERBOSE,
)
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028\u2029\u2060\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def normalise_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return ``text`` in NFKC form, web clutter removed, whitespace folded, capped in length."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    kept = [
        line
        for line in text.splitlines()
        if not _CLUTTER_LINES.match(line.strip()) and not _is_cookie_banner(line)
    ]
    # Runs of whitespace (str.isspace, as the re module's \s) folded to one space, ends trimmed.
    folded = " ".join(" ".join(kept).split())
    return folded[:max_chars]


def _is_cookie_banner(line: str) -> bool:
    # A long paragraph that mentions cookies in passing is content; a short one is a banner.
    return len(line) < 400 and _COOKIE_BANNER.search(line) is not None


class TextNormaliser(TransformerMixin, BaseEstimator):
    """Pipeline step applying :func:`normalise_text` to every document, then, with
    ``identity_terms``, reading names, faiths, places of worship, nationalities and languages
    as placeholders (:mod:`triage.core.identity`), so no swap of them can move the model."""

    # Models saved before the parameter existed load with it off, as they were trained.
    identity_terms = False

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, identity_terms: bool = False) -> None:
        self.max_chars = max_chars
        self.identity_terms = identity_terms

    def fit(self, texts: Iterable[str], y: object = None) -> TextNormaliser:
        if self.identity_terms:
            # The words of the training texts, one per line (one string: compact in a model
            # file); a capitalised word outside them is read as a name.
            normalised = [normalise_text(text, self.max_chars) for text in texts]
            self.known_words_ = "\n".join(sorted(corpus_words(normalised)))
        return self

    def transform(self, texts: Iterable[str]) -> list[str]:
        if self.identity_terms:
            known = self._known_words()
            return [
                mask_identity_terms(normalise_text(text, self.max_chars), known) for text in texts
            ]
        return [normalise_text(text, self.max_chars) for text in texts]

    def _known_words(self) -> frozenset[str]:
        # A model file holding no words (or not a string of them) reads every capitalised word
        # as a name rather than failing every call.
        packed = getattr(self, "known_words_", "")
        if not isinstance(packed, str):
            packed = ""
        cached: tuple[str, frozenset[str]] | None = self.__dict__.get("_known_set")
        if cached is None or cached[0] is not packed:
            cached = (packed, frozenset(packed.split("\n")) if packed else frozenset())
            self.__dict__["_known_set"] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_known_set", None)  # a cache, not part of the model
        return state

    def __sklearn_is_fitted__(self) -> bool:
        # Without identity terms there is nothing to learn; with them, the training words.
        return not self.identity_terms or hasattr(self, "known_words_")
