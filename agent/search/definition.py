"""The `definition` signal: for a "what is X?" question, the pages that define X.

A broad question ("What is XTS mode?", "导言区是什么？") belongs on the page that says what X is
("... (XTS) is a block mode ...", "导言区是指 ..."), which is often not where X is mentioned most:
the section about X goes on for pages of interfaces that name X in every line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent.search.tokens import normalise, query_terms

MAX_WORDS = 4        # a subject of more words is a description, not a name (devset: long questions)
MAX_ZH_CHARS = 12
MAX_QUESTION_CHARS = 120  # a "what is X?" question with X that short is shorter than this
CANDIDATES = 20      # pages read (the best by the subject's page BM25): keeps the cost per query fixed
_TAIL = r"[\s?？.。!！]*$"
_ASK = (re.compile(r"^\s*what\s+(?:is|are)\s+(?:an?\s+|the\s+)?(?P<x>.+?)(?:\s+(?:used\s+)?for)?" + _TAIL),
        re.compile(r"^\s*what\s+does\s+(?P<x>.+?)\s+(?:do|mean|stand\s+for)" + _TAIL),
        re.compile(r"^\s*(?:什么是|何谓)\s*(?P<x>.+?)" + _TAIL),
        re.compile(r"^\s*(?P<x>.+?)\s*(?:是什么|是指什么|指的是什么|是啥|是什么意思)" + _TAIL))
#: what follows a defined name: an optional "(expansion)", then a verb (or the dash of a manual page NAME line)
_EN_VERB = r"(?:\s*\([^()\n]{1,80}\))?,?\s+(?:is|are|means|refers\s+to|stands\s+for|denotes|[-\u2013\u2014])\s"
#: what may stand before a defined English name (then spaces): a sentence's end, a bracket, an article, or a
#: line break ("galois counter mode is" does not define "counter mode")
_EN_BEFORE = re.compile(r"(?:^|[.;:!?(]|\b(?:a|an|the))$")
_ZH_VERB = r"[)）]?(?:\s*[(（][^()（）\n]{1,40}[)）])?\s*(?:是|指|即|就是|[:：])"


def subject(question: str) -> str | None:
    """X of a "what is X?" / "what does X do?" / "X 是什么？" question (None for any other question)."""
    text = " ".join(normalise(question).split())
    if len(text) > MAX_QUESTION_CHARS:  # also keeps the lazy patterns below linear in practice
        return None
    for pattern in _ASK:
        found = pattern.match(text)
        if found:
            x = found["x"].strip(" \"'“”‘’")
            zh = not x.isascii()
            if x and (len(x) <= MAX_ZH_CHARS if zh else len(x.split()) <= MAX_WORDS):
                return x
    return None


def definer(x: str) -> Callable[[str], bool]:
    """Whether a (normalised) text has a sentence that defines `x`; for a name of several words also its
    first word in brackets after a long form ("What is XTS mode?": "... ciphertext stealing (XTS) is a ...")."""
    name = r"\s+".join(re.escape(w) for w in x.split())
    if not x.isascii():
        return re.compile(f"{name}{_ZH_VERB}").search  # type: ignore[return-value]
    short = f"|(?P<short>\\({re.escape(x.split()[0])}\\))" if len(x.split()) > 1 else ""
    found = re.compile(f"(?:{name}(?![\\w-])\\)?{short}){_EN_VERB}")  # a literal first: a fast scan

    def defines(text: str) -> bool:
        for match in found.finditer(text):
            before = text[:match.start()]
            if match["short"] if short else False:
                return True
            if "\n" in before[len(before.rstrip()):] or _EN_BEFORE.search(before.rstrip()[-4:]):
                return True
        return False

    return defines


def defined_pages(question: str, view: Any, indexes: Sequence[Any]) -> np.ndarray | None:
    """Per page of `view` (keyword_index.MergedView over `indexes`): 1 where a sentence defines the question's
    subject, else 0; None when the question asks no "what is X?" or no page defines X."""
    x = subject(question)
    if x is None:
        return None
    terms = query_terms(x)
    scores = np.concatenate([ix.page_bm25.scores(terms) for ix in indexes]) if terms else np.zeros(0)
    candidates = np.flatnonzero(scores > 0)
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")][:CANDIDATES]
    defines = definer(x)
    out = np.zeros(view.pages, dtype=np.float64)
    for p in candidates.tolist():
        out[p] = float(any(defines(normalise(view.document(c).page_content)) for c in view.page_chunks(p)))
    return out if out.any() else None
