"""Spaces the OCR model lost between English words ("cannotbereached" -> "cannot be reached").

The PP-OCRv4 recogniser drops narrow word gaps in tightly set English text, which leaves words
no keyword search finds and the embedding cannot read. A run-on word is split by SymSpell's
word segmentation (`symspellpy`, whose wheel holds an 82,765-word English frequency list; no edit
distance, so no letter is changed) only when the word itself is unknown and every piece is a
common word: technical names ("fontconfig", "pdflatex") have a rare piece and stay whole.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

# A candidate: letters only (a run-on word), long enough to hold two words.
MIN_LENGTH = 6
# Every piece of an accepted split is among this many most frequent words of the list,
# and is two letters or more unless it is "a" ...
COMMON_WORDS = 20_000
# ... and at least one piece is a function word: technical compounds ("monospace", "stacktrace", "rejectfont")
# are common words run together on purpose, lost spaces fall as often beside "the", "of" or "be" as anywhere.
FUNCTION_WORDS = frozenset(
    "a an the of to in on at by for from with as is are was were be been can not no or and but if so than that this "
    "these those which who what when where how do does has have had will would should may must its their there "
    "into onto upon about over under all any each other such only also then".split())
_WORD = re.compile(r"[A-Za-z]+")
_DICTIONARY = "frequency_dictionary_en_82_765.txt"


@cache
def _speller() -> tuple[Any, frozenset[str]]:
    """The SymSpell segmenter and its most common words, loaded once (0.7 s) on the first OCR page."""
    from symspellpy import SymSpell

    speller = SymSpell(max_dictionary_edit_distance=0, prefix_length=7)
    speller.load_dictionary(str(resources.files("symspellpy") / _DICTIONARY), 0, 1)
    ranked = sorted(speller.words.items(), key=lambda item: -item[1])
    return speller, frozenset(word for word, _count in ranked[:COMMON_WORDS])


def split_word(word: str) -> str:
    """`word` with spaces where it runs common words together, else `word` unchanged (case kept)."""
    speller, common = _speller()
    lower = word.lower()
    if len(word) < MIN_LENGTH or lower in speller.words:
        return word
    pieces = speller.word_segmentation(lower, max_edit_distance=0).corrected_string.split()
    if len(pieces) < 2 or "".join(pieces) != lower:
        return word
    if any(p not in common or (len(p) == 1 and p != "a") for p in pieces) or not FUNCTION_WORDS.intersection(pieces):
        return word
    out, at = [], 0
    for piece in pieces:
        out.append(word[at:at + len(piece)])
        at += len(piece)
    return " ".join(out)


def respace(text: str) -> str:
    """OCR text with each run-on English word split (`split_word`); everything else is left as it is."""
    return _WORD.sub(lambda m: split_word(m.group(0)), text)
