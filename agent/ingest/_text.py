"""Text cleaning and garbled-text detection for extracted page text (PDF text layers, OCR)."""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from typing import Callable

from agent._cjk import CJK_TEXT

_CJK = f"[{CJK_TEXT}]"
_CJK_CHAR = re.compile(_CJK)
_CJK_SPACE = re.compile(f"(?<={_CJK}) +(?={_CJK})")
# Lines ending in these end a sentence or introduce a block: never joined.
_CJK_FINAL = set("。！？：.!?:")
# Characters NFKC would change in a way that loses meaning or house style: fullwidth
# CJK punctuation (，→, ：→: ...), superscripts/subscripts (10² → 102).
_NFKC_KEEP = re.compile("([\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
                        "\u00b2\u00b3\u00b9\u2070-\u209f]+)")
_HSPACE = re.compile(r"[^\S\n]+")  # whitespace except newline
# The lookbehind anchors a match at a word start, so a long run of letters is not rescanned (O(n^2)).
_HYPHEN_BREAK = re.compile(r"(?<![A-Za-z\u00c0-\u024f])([A-Za-z\u00c0-\u024f]{2,})[-\u2010]\n([a-z\u00df-\u024f])")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_LEADER_DOTS = re.compile(r"(?: ?[.·]){5,}")  # table-of-contents leaders


def _class_of(predicate: Callable[[str], bool], extra: str = "") -> str:
    """A regex character class of every BMP code point matching `predicate`, plus `extra`."""
    ranges: list[str] = []
    start = None
    for code in range(0x10000 + 1):
        hit = code <= 0xFFFF and predicate(chr(code))
        if hit and start is None:
            start = code
        elif not hit and start is not None:
            ranges.append(re.escape(chr(start)) + ("" if code - 1 == start else "-" + re.escape(chr(code - 1))))
            start = None
    return "[" + "".join(ranges) + extra + "]"


# Dropped by clean_text: control (but \n, \t), format (but ZWNJ/ZWJ), private-use,
# surrogate, unassigned and replacement characters; astral private-use planes and tags.
_DROP = re.compile(_class_of(
    lambda c: c not in "\n\t\u200c\u200d" and (c == "\ufffd" or unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Cn")),
    "\U000e0000-\U000e007f\U000f0000-\U0010ffff"))
# Counted as junk by is_garbled (same, without format characters and tabs/newlines).
_JUNK = re.compile(_class_of(
    lambda c: not c.isspace() and (c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cs", "Cn")),
    "\U000f0000-\U0010ffff"))


def _nfkc_safe(text: str) -> str:
    if unicodedata.is_normalized("NFKC", text):
        return text
    parts = _NFKC_KEEP.split(text)
    # split() with a group alternates: [normalise, keep, normalise, keep, ...]
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _join_cjk_lines(text: str) -> str:
    """Remove line breaks that wrap a CJK sentence (a PDF's visual line ends).

    A break is removed only when CJK meets CJK across it, the line before it does not
    end a sentence, and that line is nearly as wide as the page's typical full line
    (widths estimated with CJK = 2 columns), so short lines -- headings, table cells,
    list items, the last line of a paragraph -- keep their break. A break between CJK
    and a Latin word is kept: it already reads as the space such text has there.
    """
    lines = text.split("\n")
    if len(lines) < 2 or not _CJK_CHAR.search(text):
        return text
    widths = [_width(line) for line in lines]
    body = sorted(w for w in widths if w >= 10)
    if not body:
        return text
    full = body[min(len(body) - 1, int(len(body) * 0.8))]
    threshold = max(24, 0.85 * full)
    out = [lines[0]]
    for prev_width, line in zip(widths, lines[1:]):
        prev = out[-1]
        if (prev and line and prev_width >= threshold and prev[-1] not in _CJK_FINAL
                and _CJK_CHAR.match(prev[-1]) and _CJK_CHAR.match(line[0])):
            out[-1] = prev + line
        else:
            out.append(line)
    return "\n".join(out)


def clean_text(text: str) -> str:
    """Normalise extracted or OCR'd page text for indexing and display.

    - line ends unified; PDFium's hyphenation marker (U+FFFE) and soft hyphens removed
      so the word is rejoined; ``infor-\\nmation`` → ``information``;
    - NFKC (ligatures, fullwidth letters/digits, Kangxi radicals → normal ideographs),
      except fullwidth CJK punctuation and super/subscripts, which it would corrupt;
    - control, format, private-use and unassigned characters dropped;
    - table-of-contents leader dots (``. . . . .``) shortened to `` ... ``;
    - runs of spaces/tabs collapsed to one space, lines stripped, at most one blank
      line in a row (a paragraph break);
    - CJK kept intact: no spaces between CJK characters, and line breaks that only
      wrap a Chinese sentence are removed (see `_join_cjk_lines`).
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", "\n", text)
    text = re.sub("[\ufffe\u00ad][^\\S\n]*\n?", "", text)  # PDFium's / soft hyphen at a break
    text = _nfkc_safe(text)
    text = _DROP.sub("", text)
    text = _LEADER_DOTS.sub(" ... ", text)
    text = _HSPACE.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _CJK_SPACE.sub("", text)
    text = _join_cjk_lines(text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


# --------------------------------------------------------------------------- garbled text

# (start, script) boundaries for the scripts used to spot mojibake; anything not
# listed counts as "other". Latin, Greek and common punctuation are never "mixed".
_SCRIPT_STARTS: list[tuple[int, str]] = sorted([
    (0x0000, "latin"), (0x0370, "greek"), (0x0400, "cyrillic"), (0x0530, "armenian"),
    (0x0590, "hebrew"), (0x0600, "arabic"), (0x0700, "syriac"), (0x0750, "arabic"),
    (0x0780, "thaana"), (0x07C0, "nko"), (0x0800, "samaritan"), (0x0840, "mandaic"),
    (0x0860, "syriac"), (0x0870, "arabic"), (0x0900, "devanagari"), (0x0980, "bengali"),
    (0x0A00, "gurmukhi"), (0x0A80, "gujarati"), (0x0B00, "oriya"), (0x0B80, "tamil"),
    (0x0C00, "telugu"), (0x0C80, "kannada"), (0x0D00, "malayalam"), (0x0D80, "sinhala"),
    (0x0E00, "thai"), (0x0E80, "lao"), (0x0F00, "tibetan"), (0x1000, "myanmar"),
    (0x10A0, "georgian"), (0x1100, "hangul-jamo"), (0x1200, "ethiopic"), (0x13A0, "cherokee"),
    (0x1400, "canadian"), (0x1680, "ogham"), (0x16A0, "runic"), (0x1700, "philippine"),
    (0x1780, "khmer"), (0x1800, "mongolian"), (0x18B0, "canadian"), (0x1900, "limbu"),
    (0x1950, "tai"), (0x19E0, "khmer"), (0x1A00, "buginese"), (0x1AB0, "latin"),
    (0x1B00, "balinese"), (0x1B80, "sundanese"), (0x1BC0, "batak"), (0x1C00, "lepcha"),
    (0x1C50, "olchiki"), (0x1C80, "cyrillic"), (0x1C90, "georgian"), (0x1CC0, "sundanese"),
    (0x1CD0, "vedic"), (0x1D00, "latin"), (0x1F00, "greek"), (0x2000, "latin"),
    (0x2C00, "glagolitic"), (0x2C60, "latin"), (0x2C80, "coptic"), (0x2D00, "georgian"),
    (0x2D30, "tifinagh"), (0x2D80, "ethiopic"), (0x2DE0, "cyrillic"), (0x2E00, "latin"),
    (0x2E80, "cjk"), (0x3130, "hangul"), (0x3190, "cjk"), (0xA000, "yi"), (0xA4D0, "lisu"),
    (0xA500, "vai"), (0xA640, "cyrillic"), (0xA6A0, "bamum"), (0xA700, "latin"),
    (0xA800, "other"), (0xA960, "hangul"), (0xA980, "javanese"), (0xAA00, "cham"),
    (0xAB00, "ethiopic"), (0xAB30, "latin"), (0xAB70, "cherokee"), (0xABC0, "meetei"),
    (0xAC00, "hangul"), (0xD800, "other"), (0xF900, "cjk"), (0xFB00, "latin"),
    (0xFB1D, "hebrew"), (0xFB50, "arabic"), (0xFE00, "latin"), (0xFE30, "cjk"),
    (0xFE70, "arabic"), (0xFF00, "cjk"), (0xFFF0, "other"), (0x10000, "other"),
    (0x20000, "cjk"), (0x32000, "other"),
])
_SCRIPT_KEYS = [start for start, _ in _SCRIPT_STARTS]
_NEUTRAL_SCRIPTS = {"latin", "greek"}  # mixed into any script's words legitimately (x, ε, π)
_LATIN1_MOJIBAKE = re.compile("[\u00c0-\u00ff][\u0080-\u00bf\u2013-\u2122\u0152-\u0192\u02c6\u02dc]")
_LATIN1_RUN = re.compile("[\u00a1-\u00ff]{3,}")
_CID = re.compile(r"\(cid:\d+\)")
_LEADER_TABLE = str.maketrans("", "", ".·…-_=*~\u2014\u2013\u2500")
_WHITESPACE = re.compile(r"\s+")
# A character outside Latin, Greek and general punctuation/symbols.
_NON_LATIN = re.compile("[^\x00-\u03ff\u1e00-\u1fff\u2000-\u2bff]")


@functools.lru_cache(maxsize=8192)
def _script(ch: str) -> str:
    return _SCRIPT_STARTS[bisect.bisect_right(_SCRIPT_KEYS, ord(ch)) - 1][1]


def is_garbled(text: str) -> bool:
    """True if `text` looks like a broken text layer rather than real text.

    Heuristic (needs at least 20 non-space characters; shorter text is never judged):

    - junk glyphs: more than 30% private-use, replacement (U+FFFD), unassigned or
      control characters (fonts without a usable ToUnicode map);
    - script soup: of the letters outside Latin/Greek (at least 10), a quarter or
      more sit in "words" that mix two or more such scripts (e.g. Arabic + Lao +
      Myanmar + Hangul jamo in one word) -- what pypdf produces for CJK fonts it maps
      wrongly, as in lshort-zh-cn.pdf. Real text mixes at most Latin/Greek letters
      into another script's words; CJK ideographs, kana and hangul count as one;
    - Latin-1 mojibake: at least 20% of the characters are UTF-8/GBK bytes decoded as
      Latin-1/cp1252 (``Ã¤Â¸Â­``, ``ÖÐÎÄ``), or pdfminer-style ``(cid:123)`` codes;
    - almost no letters or digits: fewer than 25% of 50+ non-space characters (glyph
      codes mapped to punctuation), which a table of numbers or code never triggers.
    """
    compact = _WHITESPACE.sub("", text)
    n = len(compact)
    if n < 20:
        return False
    if len(_JUNK.findall(compact)) > 0.3 * n:
        return True
    exotic = 0  # letters outside Latin/Greek
    mixed = 0  # ... of which in words that mix two or more such scripts
    words = text.split() if _NON_LATIN.search(text) else []
    for word in words:
        if not _NON_LATIN.search(word):
            continue
        scripts = set()
        word_exotic = 0
        for c in word:
            if c.isalpha():
                script = _script(c)
                if script not in _NEUTRAL_SCRIPTS:
                    word_exotic += 1
                    scripts.add("cjk" if script == "hangul" else script)
        exotic += word_exotic
        if len(scripts) >= 2:
            mixed += word_exotic
    if exotic >= 10 and mixed >= 0.25 * exotic:
        return True
    bad = len(_CID.findall(text)) * 8 + 2 * len(_LATIN1_MOJIBAKE.findall(text))
    bad += sum(len(m) for m in _LATIN1_RUN.findall(text))
    if bad >= 0.2 * n:
        return True
    # Leaders and rules (". . . . 12", "-----") are legitimate runs of punctuation.
    rest = compact.translate(_LEADER_TABLE)
    alnum = sum(map(str.isalnum, rest))
    return len(rest) >= 50 and alnum < 0.25 * len(rest)
