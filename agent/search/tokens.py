"""The tokenizer: a text's index terms, a question's terms, and whether a question shares any with some excerpts.

NFKC + lower case; English words minus stop words, Snowball-stemmed (one stemmer per thread); names marked by a
symbol kept whole (`c#`, `.net`, `i/o`) next to their word; Chinese runs (line breaks inside them removed) as
character unigrams and bigrams, so a Chinese word is found inside unsegmented text with no dictionary; operator
tokens such as `++` or `->` from code. The term counts and BM25 built on these terms: agent.search.lexical.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import PurePath
from typing import Any

from agent._cjk import IDEOGRAPHS

logger = logging.getLogger(__name__)

#: Bump when `tokenize` changes what it returns: persisted counts of an older tokenizer are
#: then ignored (and rebuilt) instead of silently mismatching the query's terms.
TOKENIZER_VERSION = 3

_CJK = IDEOGRAPHS
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")
_OPERATOR = r"\+\+|--|->|::|<=|>=|!=|==|\*\*|\+=|-=|&&|\|\|"
#: Names a symbol tells apart from a word: `c#`, `f#`, `.net`, `i/o` (each alone, at a word boundary).
_MARKED = r"(?<![a-z0-9_./])(?:[a-z]#|\.[a-z]+|[a-z]/[a-z])(?![a-z0-9_#/])"
#: CJK runs; code-like words with a ++/-- suffix (`i++`); marked names; words and numbers; operators.
#: The code-word alternative is anchored at a word start so long runs are not rescanned (O(n^2)).
_TOKEN = re.compile(f"[{_CJK}]+|(?<![a-z0-9_])[a-z_][a-z0-9_]*(?:\\+\\+|--)(?![-+])|{_MARKED}"
                    f"|[a-z0-9]+(?:\\.[0-9]+)*|{_OPERATOR}")

EN_STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't
doing don't down during each few for from further had hadn't has hasn't have haven't having he
her here hers herself him himself his how i if in into is isn't it it's its itself let's me
more most my myself no nor not of off on once only or other ought our ours ourselves out over
own same she should shouldn't so some such than that the their theirs them themselves then there
these they this those through to too under until up very was wasn't we were weren't what when
where which while who whom why will with won't would wouldn't you your yours yourself
yourselves s t d ll m o re ve y also get got want wants need needs make made use used using
way ways like just instead thing things something anything
""".split())


@lru_cache(maxsize=1)
def _snowball() -> Any:
    """The snowballstemmer module, or None (warned once)."""
    try:
        import snowballstemmer
    except ImportError:  # requirements.txt pins it; without it, search still works, unstemmed
        logger.warning("snowballstemmer is not installed: English keyword search runs without stemming")
        return None
    return snowballstemmer


_THREAD = threading.local()


def _stem(word: str) -> str:
    """The word's Snowball stem, by this thread's own stemmer: a stemmer keeps the word it works on, and one shared
    by an ingest job and another thread raised "string index out of range" and returned wrong stems."""
    stem = getattr(_THREAD, "stem", None)
    if stem is None:
        module = _snowball()
        stem = _THREAD.stem = module.stemmer("english").stemWord if module is not None else str
    return stem(word)


def normalise(text: str) -> str:
    """NFKC (full-width forms to ASCII), lower case, no line breaks inside Chinese text."""
    return _CJK_GAP.sub("", unicodedata.normalize("NFKC", text).lower())


def file_title(file: str) -> str:
    """A readable title from a file name: `asymptote-manual_zh.pdf` -> `asymptote manual zh`."""
    stem = PurePath(file).stem
    return re.sub(r"[_\-.]+", " ", stem).strip()


def tokenize(text: str) -> list[str]:
    """Index terms of a text (see the module docstring)."""
    out: list[str] = []
    for tok in _TOKEN.findall(normalise(text)):
        terms = _WORD_TERMS.get(tok)
        if terms is None:
            if _CJK_RUN.fullmatch(tok):  # not cached: runs of Chinese text rarely repeat
                out.extend(tok)
                out.extend(tok[i:i + 2] for i in range(len(tok) - 1))
                continue
            terms = _word_terms(tok)
        out.extend(terms)
    return out


#: Chinese question words and particles, cut out of a question before it is tokenised: the counterpart
#: of EN_STOPWORDS ("what", "how", "is") for unsegmented Chinese, where they would also join their
#: neighbours into bigrams that are not words (新手怎样入门 -> 手怎, 样入).
ZH_QUESTION_WORDS = ("为什么", "有没有", "是不是", "什么", "怎么", "怎样", "如何", "为何", "是否", "能否", "哪些",
                     "哪里", "哪个", "请问", "吗", "呢", "吧", "啊")
_ZH_QUESTION = re.compile("|".join(sorted(ZH_QUESTION_WORDS, key=len, reverse=True)))


def query_terms(query: str) -> list[str]:
    """Index terms of a question: `tokenize` after cutting out Chinese question words (a comma, not a
    space, takes their place: spaces between Chinese characters are removed by `normalise`)."""
    return tokenize(_ZH_QUESTION.sub(",", normalise(query)))


def shares_terms(query: str, texts: Iterable[str]) -> bool:
    """Whether any index term of `query` occurs in `texts`: a search whose excerpts share no
    term with the question found them by vector similarity alone, which is weak evidence.
    Across scripts (a Chinese question over English excerpts) no word can match, so the
    question is given the benefit of the doubt."""
    texts = list(texts)
    wanted = set(tokenize(query))
    if any(wanted.intersection(tokenize(text)) for text in texts):
        return True
    return not _scripts(query) & _scripts("".join(texts))


def _scripts(text: str) -> set[str]:
    """Which of the two term families (CJK ideographs, Latin-script words) `text` holds."""
    return {name for name, pattern in _SCRIPT_PATTERNS.items() if pattern.search(text)}


_SCRIPT_PATTERNS = {"cjk": _CJK_RUN, "latin": re.compile(r"[A-Za-z\u00c0-\u024f]")}


def _word_terms(tok: str) -> tuple[str, ...]:
    """The terms of one non-CJK token, memoised: tokenising is the slow part of indexing,
    and the same few thousand words make up most of any text."""
    if tok.endswith(("++", "--")) and len(tok) > 2:  # i++: the whole token and the operator
        terms: tuple[str, ...] = (tok, tok[-2:])
    elif _MARKED_RE.fullmatch(tok):  # c#, .net: whole, and the word
        word = tok.strip(".#")
        terms = (tok, word) if len(word) > 1 and "/" not in word else (tok,)
    elif tok in EN_STOPWORDS:
        terms = ()
    elif tok[0].isalpha():
        terms = (_stem(tok),)
    else:
        terms = (tok,)
    if len(_WORD_TERMS) < _WORD_CACHE_MAX:
        _WORD_TERMS[tok] = terms
    return terms


_WORD_TERMS: dict[str, tuple[str, ...]] = {}
_MARKED_RE = re.compile(_MARKED)
_WORD_CACHE_MAX = 200_000  # entries (~40 MB at most)
