"""Which language a report is written in, so that text the model cannot read is flagged.

The model is trained on English. A report in another language (a bomb threat in Chinese, a
fraud report in Polish) is not something it can score: the service must say so (reason
``NON_ENGLISH`` and the detected language) instead of answering with a base-rate label.

``LanguageCheck.check(texts)`` returns one ``LanguageVerdict`` per text:

- ``language``: the ISO 639-1 code of the language the text is mostly written in, or ``""``
  when it cannot be told (empty, digits, emoji, punctuation, zero-width characters, or fewer
  letters than a language can be read from). Undetermined text is *in scope* here: a text with
  nothing to read is another check's business (``NO_SIGNAL``).
- ``in_scope``: the text is in the expected language (or undetermined).
- ``confidence``: the share of the text's letters attributed to ``language`` (1.0 when the
  English fast path decided, 0.0 when undetermined).

How a text is read
------------------
Only the first ``WINDOW`` (1,000) characters are looked at, so time and memory are bounded
whatever the input (a 1 MB string costs the same as a 1,000-character one). When those hold
almost no letters (a wall of emoji before the text), up to ``SCAN_LIMIT`` characters are
searched for letters instead.

1. **English fast path** (expected language English only). The window is mapped to ASCII bytes
   and split into words with C-speed ``bytes`` operations; if at least ``FAST_MIN_WORDS`` words
   were found, at least ``FAST_FUNCTION_SHARE`` of them are English function words
   (``ENGLISH_FUNCTION_WORDS``: the, and, of, was, with, ...) and at most ``FAST_MAX_NON_LATIN``
   of the letters are outside the Latin script, the text is English and lingua is not called.
   The English reports in ``tests/test_language.py`` have 45-55% such words, the reports in
   other languages there at most 8% (look-alikes: Polish "to"/"on", German "in"/"was", Dutch
   "is"/"we", Tagalog "at"), so the path is only taken when most of the text is English: a
   Polish report with a few English words, or half English and half Welsh, falls through to
   the detector.
2. **Share by script.** The rest is cleaned (NFKC, zero-width and direction-control characters
   removed, lone surrogates replaced) and split into non-Latin stretches (Cyrillic, Arabic,
   Han, Devanagari, ...) and the Latin remainder. Letters are counted per part; a Han, Kana or
   Hangul character counts ``IDEOGRAPH_WEIGHT`` (3) letters, roughly what an English word
   spends per character of Chinese.
   - The non-Latin part (at least ``MIN_NON_LATIN_LETTERS`` weighted letters) goes to lingua in
     one call.
   - The Latin part (at least ``MIN_LATIN_LETTERS`` letters) is English if it passes the
     function-word test on its own. Otherwise it is cut into sentence chunks of at least
     ``CHUNK_MIN_CHARS`` characters (at most ``MAX_CHUNKS``); about ``DETECT_CHARS`` of them,
     spread evenly over the window, go to lingua one chunk per call, and what they show is
     scaled up to all the Latin letters (lingua costs ~1-1.5 µs per Latin character).
   Each call's letters are spread over the languages by lingua's confidence values (a chunk
   that is 0.8 Tagalog and 0.2 Romanian gives 80% of its letters to Tagalog), so one misread
   chunk does not decide; a call whose best language is below ``MIN_CONFIDENCE`` adds nothing.
3. **Decision.** Over the letters whose language was found: if the share that is *not* the
   expected language is at least ``min_share`` (default 0.5: "mostly"), the text is out of
   scope and its language is the largest foreign one; otherwise it is the expected language.
   No language found at all: undetermined. An English report quoting a Chinese sentence,
   naming Polish people or places, or holding a line of Welsh therefore stays English; a
   Polish report with a few English words, or Chinese with brand names, is foreign.

Cost, one text per call, on a shared 2-core machine (best of 200 / mean of runs under load):
an English report of ~1,600 characters on the fast path 13 / 25 µs; English with a long
Chinese quote 34 µs; clipped English notes that miss the fast path ~0.45 / 0.7-1.5 ms; a
foreign report of 70-330 characters 0.06-0.8 / 0.5-1.7 ms (1.2-2x one lingua call on the whole
text: the chunking); Polish of 1,300 characters 1.0 / 1.6-5 ms; undetermined text under 10 µs;
1 MB or 100,000-emoji strings under ~10 ms. Batches of 64 cost the same per text.

lingua-language-detector
------------------------
The detector (``lingua``, a Rust library whose language models ship inside the wheel: nothing
is downloaded at run time) is restricted to ``LANGUAGES`` and runs in low-accuracy mode with
its models preloaded: low-accuracy mode uses trigram models only, which lingua documents as
mostly as accurate as high-accuracy mode above ~120 characters (our chunks aim at that). For
this set it adds ~65 MB of resident memory and takes ~0.5-1 s to build, against ~750 MB and
~10 s for high-accuracy mode. It is built once per process, lazily, under a lock (``detector()``);
lingua documents one ``LanguageDetector`` as safe to use from several threads at once.

A language outside ``LANGUAGES`` is reported as the nearest language inside it: out of scope
all the same, with an approximate code (a very English-like one could pass as English). Very
short texts in a Latin-script language (below ``MIN_LATIN_LETTERS`` letters, e.g. "Bomba!")
are undetermined: lingua cannot tell them apart reliably.

Never log or print report text from here: verdicts carry codes and numbers only.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # lingua is imported when the detector is first built
    from lingua import LanguageDetector

__all__ = [
    "ENGLISH_FUNCTION_WORDS",
    "LANGUAGES",
    "LanguageCheck",
    "LanguageVerdict",
    "detector",
    "english_fast_path",
]

# ISO 639-1 code -> lingua ``Language`` member name. English plus the languages London's call
# handlers meet most (the main languages other than English recorded in London: Polish,
# Bengali, Gujarati, French, Urdu, Portuguese, Turkish, Spanish, Arabic, Tamil, Punjabi,
# Italian, Somali, Lithuanian, German, Persian, Tagalog, Romanian, Russian, Chinese, ...) and
# a few more neighbours that keep look-alike text from being taken for English or for the
# wrong neighbour (Dutch, Welsh, Czech, Slovak, ...). Every one is supported by lingua 2.x.
# Not in lingua, so not here: Pashto, Kurdish, Tigrinya, Amharic, Nepali, Sinhala, Twi, Igbo,
# Malayalam; text in those is reported as the nearest language below (or undetermined).
LANGUAGES: Mapping[str, str] = MappingProxyType(
    {
        "en": "ENGLISH",
        "ar": "ARABIC",
        "bn": "BENGALI",
        "zh": "CHINESE",
        "fr": "FRENCH",
        "de": "GERMAN",
        "gu": "GUJARATI",
        "hi": "HINDI",
        "it": "ITALIAN",
        "lt": "LITHUANIAN",
        "fa": "PERSIAN",
        "pl": "POLISH",
        "pt": "PORTUGUESE",
        "pa": "PUNJABI",
        "ro": "ROMANIAN",
        "ru": "RUSSIAN",
        "so": "SOMALI",
        "es": "SPANISH",
        "tl": "TAGALOG",
        "ta": "TAMIL",
        "tr": "TURKISH",
        "uk": "UKRAINIAN",
        "ur": "URDU",
        "vi": "VIETNAMESE",
        "yo": "YORUBA",
        # Further languages met in London, and close neighbours of the ones above.
        "sq": "ALBANIAN",
        "bg": "BULGARIAN",
        "cs": "CZECH",
        "nl": "DUTCH",
        "el": "GREEK",
        "he": "HEBREW",
        "hu": "HUNGARIAN",
        "ja": "JAPANESE",
        "ko": "KOREAN",
        "lv": "LATVIAN",
        "sk": "SLOVAK",
        "sw": "SWAHILI",
        "cy": "WELSH",
    }
)

WINDOW = 1_000  # characters of a text that are read
SCAN_LIMIT = 20_000  # where to look for letters when the window holds almost none: the model
# itself reads no further (normalise.DEFAULT_MAX_CHARS)
FAST_MIN_WORDS = 8
FAST_FUNCTION_SHARE = 0.25
FAST_MAX_NON_LATIN = 0.10
MIN_LATIN_LETTERS = 12
MIN_NON_LATIN_LETTERS = 3
IDEOGRAPH_WEIGHT = 3
CHUNK_MIN_CHARS = 120
MAX_CHUNKS = 8
DETECT_CHARS = 500  # about this much of the Latin part of the window is read by lingua
MIN_CONFIDENCE = 0.5

# English function words that are not (common) words of the languages above. Left out on
# purpose: "a" and "i" (words in Polish, Spanish, Welsh, Romanian, ... and fragments of words
# with diacritics), "an", "am", "do", "so", "me", "no", "die", "man", "den", "de", "la", "na".
# Contractions are not listed: the tokenizer splits words at apostrophes.
_FUNCTION_WORD_LIST = """
    the and to of was were is are in my it its that this these those for on have has had
    he she they them their his her him we our us you your with from by at as be been being
    but or not if then than there here when where which who whom what while because about
    into over after before under up out off will would could should can did does just also
    very all any some myself said says told asked going got get again only other such more
    most
"""
ENGLISH_FUNCTION_WORDS: frozenset[str] = frozenset(_FUNCTION_WORD_LIST.split())
# The fast path compares bytes.
_FUNCTION_BYTES: frozenset[bytes] = frozenset(w.encode("ascii") for w in ENGLISH_FUNCTION_WORDS)

# bytes.translate table: ASCII letters to lower case, a non-ASCII character (encoded as "?"
# once real question marks are gone) kept as part of its word, everything else a space.
_WORD_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or c == 63 else 32 for c in range(256)
)
_ASCII_WORD_BYTES = _WORD_BYTES.replace(b"?", b" ")  # ASCII text: "?" is punctuation
_ASCII_LETTER_BYTES = bytes(range(65, 91)) + bytes(range(97, 123))

_LATIN_RANGES = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_IDEOGRAPHS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_NON_LATIN_LETTER = re.compile(rf"[^\W\d_{_LATIN_RANGES}]")
_LATIN_LETTER = re.compile(rf"[{_LATIN_RANGES}]")
_IDEOGRAPH = re.compile(rf"[{_IDEOGRAPHS}]")
# A stretch of non-Latin letters with whatever non-letters sit between them. Letters and
# non-letters are disjoint, so each character can be matched one way only: linear time.
_NON_LATIN_STRETCH = re.compile(rf"[^\W\d_{_LATIN_RANGES}](?:[\W\d_]*+[^\W\d_{_LATIN_RANGES}])*+")
_NON_LETTERS = re.compile(r"[\W\d_]++")
# Invisible format characters: zero-width spaces and joiners, direction marks and overrides,
# soft hyphen, word joiner, byte-order mark.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;:\n])\s+|\n")


@dataclass(frozen=True, slots=True)
class LanguageVerdict:
    """The language of one text: ISO 639-1 code ("" when undetermined), in scope, confidence."""

    language: str
    in_scope: bool
    confidence: float


_UNDETERMINED = LanguageVerdict("", True, 0.0)
_ENGLISH_FAST = LanguageVerdict("en", True, 1.0)

_DETECTOR: LanguageDetector | None = None
_DETECTOR_LOCK = threading.Lock()


def detector() -> LanguageDetector:
    """The process's lingua detector over ``LANGUAGES``, built on first use (~0.7 s, ~80 MB)."""
    global _DETECTOR
    built = _DETECTOR
    if built is not None:
        return built
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from lingua import Language, LanguageDetectorBuilder

            languages = [Language.from_str(name) for name in LANGUAGES.values()]
            _DETECTOR = (
                LanguageDetectorBuilder.from_languages(*languages)
                .with_low_accuracy_mode()
                .with_preloaded_language_models()
                .build()
            )
        return _DETECTOR


def _function_word_test(window: str, min_words: int) -> bool:
    """Whether ``window`` reads as English by its share of English function words.

    Cost: a few C-level passes over the text plus one set look-up per word (~10 µs for 1,000
    characters of English).
    """
    ascii_only = window.isascii()
    if ascii_only:
        raw = window.encode("ascii")
    else:
        # Each non-ASCII character becomes "?" and stays inside its word ("café" -> "caf?",
        # never the fragment "caf"); real question marks are made spaces first.
        raw = window.replace("?", " ").encode("ascii", "replace")
    words = raw.translate(_ASCII_WORD_BYTES if ascii_only else _WORD_BYTES).split()
    if len(words) < min_words:
        return False
    hits = sum(map(_FUNCTION_BYTES.__contains__, words))
    if hits < FAST_FUNCTION_SHARE * len(words):
        return False
    if ascii_only:
        return True
    latin = len(raw) - len(raw.translate(None, _ASCII_LETTER_BYTES))
    non_latin = len(_NON_LATIN_LETTER.findall(window))
    return non_latin <= FAST_MAX_NON_LATIN * (latin + non_latin)


def english_fast_path(text: str) -> bool:
    """Whether ``text`` is taken as English without calling the detector (see module doc)."""
    return _function_word_test(text[:WINDOW], FAST_MIN_WORDS)


def _clean(window: str) -> str:
    """NFKC, invisible characters removed, lone surrogates replaced (lingua needs valid UTF-8)."""
    window = window.encode("utf-8", "replace").decode("utf-8")
    window = _INVISIBLE.sub("", window)
    return unicodedata.normalize("NFKC", window)


def _weighted_letters(text: str) -> int:
    letters = len(text) - sum(map(len, _NON_LETTERS.findall(text)))
    return letters + (IDEOGRAPH_WEIGHT - 1) * len(_IDEOGRAPH.findall(text))


def _chunks(text: str) -> list[str]:
    """Sentence-sized pieces of ``text``: at least ``CHUNK_MIN_CHARS``, at most ``MAX_CHUNKS``."""
    size = max(CHUNK_MIN_CHARS, len(text) // MAX_CHUNKS + 1)
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for piece in _SENTENCE_END.split(text):
        current.append(piece)
        length += len(piece) + 1
        if length >= size:
            chunks.append(" ".join(current))
            current, length = [], 0
    if current:
        tail = " ".join(current)
        if chunks and length < size // 2:
            chunks[-1] = chunks[-1] + " " + tail  # a short tail joins the last chunk
        else:
            chunks.append(tail)
    return chunks


def _spread(chunks: list[str], length: int) -> list[str]:
    """About ``DETECT_CHARS`` worth of ``chunks``, evenly spaced, first and last included."""
    wanted = max(1, round(len(chunks) * DETECT_CHARS / max(1, length)))
    if wanted >= len(chunks):
        return chunks
    if wanted == 1:
        return chunks[:1]
    last = len(chunks) - 1
    return [chunks[i] for i in sorted({round(k * last / (wanted - 1)) for k in range(wanted)})]


def _add_shares(shares: dict[str, float], text: str, letters: int) -> bool:
    """Spread ``letters`` over the languages lingua finds in ``text``, by its confidence.

    False (nothing added) when no language reaches ``MIN_CONFIDENCE``: gibberish, or too
    little text to tell.
    """
    values = detector().compute_language_confidence_values(text)
    if not values or values[0].value < MIN_CONFIDENCE:
        return False
    for value in values:
        if value.value <= 0.0:
            break  # sorted by value, descending
        code = value.language.iso_code_639_1.name.lower()
        shares[code] = shares.get(code, 0.0) + letters * value.value
    return True


def _share(part: float, total: float) -> float:
    # Rounded: lingua sums its probabilities in no fixed order, so the last digits of the
    # same text's values differ from call to call.
    return round(min(1.0, part / total), 3)


class LanguageCheck:
    """Tells, per text, whether it is in the ``expected`` language (see the module doc)."""

    def __init__(self, expected: str = "en", min_share: float = 0.5) -> None:
        if expected not in LANGUAGES:
            raise ValueError(f"expected language {expected!r} is not one of LANGUAGES")
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"min_share must be in (0, 1], got {min_share}")
        self.expected = expected
        self.min_share = min_share
        self._stats_lock = threading.Lock()
        self.fast_path_hits = 0  # texts decided by the English fast path
        self.detector_calls = 0  # lingua calls made

    def check(self, texts: Sequence[str]) -> list[LanguageVerdict]:
        """One verdict per text, in order. Never raises on any ``str``."""
        fast = self.expected == "en"
        verdicts: list[LanguageVerdict] = []
        hits = calls = 0
        for text in texts:
            window = text[:WINDOW]
            if fast and _function_word_test(window, FAST_MIN_WORDS):
                verdicts.append(_ENGLISH_FAST)
                hits += 1
                continue
            verdict, used = self._slow(text, window)
            verdicts.append(verdict)
            calls += used
        with self._stats_lock:
            self.fast_path_hits += hits
            self.detector_calls += calls
        return verdicts

    def _slow(self, text: str, window: str) -> tuple[LanguageVerdict, int]:
        clean = _clean(window)
        if len(text) > WINDOW and _weighted_letters(clean) < CHUNK_MIN_CHARS // 2:
            # Almost no letters up front (a wall of emoji or digits): read the letters that
            # come later instead, within SCAN_LIMIT characters.
            clean = _clean(_NON_LETTERS.sub(" ", text[:SCAN_LIMIT])[:WINDOW])
        stretches = _NON_LATIN_STRETCH.findall(clean)
        non_latin_text = " ".join(stretches)
        latin_text = _NON_LATIN_STRETCH.sub(" ", clean) if stretches else clean
        non_latin = _weighted_letters(non_latin_text) if stretches else 0
        latin = len(_LATIN_LETTER.findall(latin_text))

        shares: dict[str, float] = {}
        calls = 0
        if non_latin >= MIN_NON_LATIN_LETTERS:
            _add_shares(shares, non_latin_text, non_latin)
            calls += 1
        if latin >= MIN_LATIN_LETTERS:
            if _function_word_test(latin_text, FAST_MIN_WORDS):
                shares["en"] = shares.get("en", 0.0) + latin
            else:
                # lingua costs ~1.5 µs per Latin character: it reads about DETECT_CHARS of
                # them, in chunks spread evenly over the window, and what it finds there is
                # scaled up to all the Latin letters of the window.
                read: dict[str, float] = {}
                for chunk in _spread(_chunks(latin_text), len(latin_text)):
                    letters = len(_LATIN_LETTER.findall(chunk))
                    if letters:
                        _add_shares(read, chunk, letters)
                        calls += 1
                scale = latin / max(1.0, sum(read.values()))
                for code, value in read.items():
                    shares[code] = shares.get(code, 0.0) + value * scale
        total = sum(shares.values())
        if total <= 0.0:
            return _UNDETERMINED, calls
        foreign = {code: n for code, n in shares.items() if code != self.expected}
        if sum(foreign.values()) >= self.min_share * total:
            top = max(foreign, key=lambda code: (foreign[code], code))
            return LanguageVerdict(top, False, _share(foreign[top], total)), calls
        return LanguageVerdict(self.expected, True, _share(shares[self.expected], total)), calls
