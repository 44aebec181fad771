"""Document-side sweep of issue 16 (eighth round): code listings and repeated passages, cross-validated by document.

Two miss kinds of bench/README 4d: a page dense with the question's identifiers in signatures or plot code
outranks the prose page that explains them, and a later page repeating a passage outranks the first. The
signals, each a raw share of the page (0..1) fitted as a penalty on top of the product's fixed weights, leave
one document out, as in bench/cv_sweep.py (whose `hits` and `cross_validate` they reuse):

- code: the share of the page's non-blank lines that look like code (a text rule: `;`/`{`/`}` at the end, a
  preprocessor or troff request line, a call or prototype `name(...)` with little prose around it, or a high
  density of `()[]{}=<>*&|$"`);
- code_num: the same, counting lines of bare numbers (plot axis labels) as code too;
- code_nl / code_num_nl: the same, only for a question that names no identifier (no `_`, camelCase, `()` or
  leading `-`/`.`/`\\` in its words), so "what does cmsIsTag return?" keeps its listing page;
- qcode: the share of the query's term occurrences on the page (idf-weighted) that fall in code lines: a page
  that names the question's words only in a listing, not the page whose prose explains them;
- dup: the share of the page's word 6-grams found on an earlier page of the same document;
- index: the share of the page's non-blank lines that are back-of-book index entries (words, then a comma and
  page numbers: "longtable, 24, 29"), which the product's contents penalty (leader dots) does not see;
- listing: the share of lines of words ending in a page number, index entries and contents lines with or
  without leader dots alike.

    python -m bench.cv_prose --set pooled --data DIR   # devset + tune split, 29 folds; also the tune split alone
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_sections import product_grid, product_report

NAME = "cv_prose"
OWN = ("code", "code_num", "code_nl", "code_num_nl", "qcode", "code_def", "qcode_def", "dup", "index", "listing")
SIGNALS = PRODUCT + OWN
PENALTY = (0.0, -0.25, -0.5, -1.0, -2.0, -4.0)
IDEAS: dict[str, dict[str, tuple[float, ...]]] = {
    "code lines": {"code": PENALTY},
    "code and number lines": {"code_num": PENALTY},
    "code lines, questions naming no identifier": {"code_nl": PENALTY},
    "code and number lines, questions naming no identifier": {"code_num_nl": PENALTY},
    "query words in code lines": {"qcode": PENALTY},
    "code lines, what-is questions": {"code_def": PENALTY},
    "query words in code lines, what-is questions": {"qcode_def": PENALTY},
    "repeated 6-grams (later copy)": {"dup": PENALTY},
    "back-of-book index lines": {"index": PENALTY},
    "lines ending in a page number": {"listing": PENALTY},
}
SHINGLE = 6
_CODE_END = re.compile(r"[;{}]\s*$")
_REQUEST = re.compile(r"^\s*(?:#\s*(?:define|include|if|ifdef|endif)\b|\.[A-Za-z]{1,12}\b)")
_CALL = re.compile(r"\b[A-Za-z_][\w.]*\s*\(")
_SYMBOLS = re.compile(r"[()\[\]{}=<>*&|$\"]")
_NUMBERS = re.compile(r"^[\s\d.,:+\-−–]+$")
_WORDS = r"[A-Za-z\u4e00-\u9fff\\].*"
_INDEX_LINE = re.compile(_WORDS + r",\s*\d+(?:\s*[-–]\s*\d+)?(?:\s*,\s*\d+(?:\s*[-–]\s*\d+)?)*\s*$")
_LISTING_LINE = re.compile(_WORDS + r"[\s,.]\s*\d+\s*$")
_IDENT = re.compile(r"\w_\w|[a-z][A-Z]|\(\)|(?:^|\s)[-.\\][A-Za-z]")


def code_line(line: str) -> bool:
    """A listing line ends a statement, is a request, or is mostly call syntax; a sentence is none of these."""
    s = line.strip()
    if _CODE_END.search(s) or _REQUEST.match(s):
        return True
    words = len(s.split())
    if _CALL.search(s) and words <= 6:
        return True
    return len(s) >= 8 and len(_SYMBOLS.findall(s)) / len(s) > 0.08


def code_share(text: str, numbers: bool) -> float:
    """The share of a page's non-blank lines that are code (and, with `numbers`, lines of bare numbers)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return 0.0
    hit = sum(1 for ln in lines if code_line(ln) or (numbers and _NUMBERS.match(ln)))
    return hit / len(lines)


def line_share(text: str, pattern: re.Pattern[str]) -> float:
    """The share of a page's non-blank lines that `pattern` matches (from their start)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return sum(1 for ln in lines if pattern.match(ln)) / len(lines) if lines else 0.0


def names_identifier(question: str) -> bool:
    """A question that names an identifier may well be answered by a listing page."""
    return bool(_IDENT.search(question))


def dup_share(texts: Sequence[str], files: Sequence[str], order: Sequence[int]) -> np.ndarray:
    """Per page: the share of its word 6-grams already seen on an earlier page of the same file."""
    from agent.search.tokens import tokenize

    out = np.zeros(len(texts))
    seen: dict[str, set[tuple[str, ...]]] = {}
    for p in order:
        words = tokenize(texts[p])
        grams = {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}
        earlier = seen.setdefault(files[p], set())
        if grams:
            out[p] = len(grams & earlier) / len(grams)
        earlier |= grams
    return out


def page_texts(ix: Any) -> list[str]:
    """Each page row's text rebuilt from its chunks, as the product's page signals see it."""
    from agent.search.lexical import page_groups, page_text

    _, members = page_groups(ix.documents)
    return [page_text([ix.documents[i] for i in rows]) for rows in members]


def page_shares(ix: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The question-independent signals of every page row of one collection."""
    keys = ix.pages.keys()
    order = sorted(range(len(texts)), key=lambda p: keys[p])
    return {"code": np.array([code_share(t, False) for t in texts]),
            "code_num": np.array([code_share(t, True) for t in texts]),
            "dup": dup_share(texts, [k[0] for k in keys], order),
            "index": np.array([line_share(t, _INDEX_LINE) for t in texts]),
            "listing": np.array([line_share(t, _LISTING_LINE) for t in texts])}


class CodeTerms:
    """Per page: term counts in its code lines and in all its lines, for `share`."""

    def __init__(self, texts: Sequence[str]) -> None:
        from agent.search.tokens import tokenize

        self.code: list[Counter[str]] = []
        self.all: list[Counter[str]] = []
        for text in texts:
            code: Counter[str] = Counter()
            every: Counter[str] = Counter()
            for line in text.splitlines():
                terms = tokenize(line)
                every.update(terms)
                if code_line(line):
                    code.update(terms)
            self.code.append(code)
            self.all.append(every)

    def share(self, idf: dict[str, float]) -> np.ndarray:
        """Per page: idf-weighted share of the query terms' occurrences that are in code lines."""
        out = np.zeros(len(self.all))
        for p, (code, every) in enumerate(zip(self.code, self.all)):
            total = sum(every[t] * w for t, w in idf.items())
            if total:
                out[p] = sum(code[t] * w for t, w in idf.items()) / total
        return out


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's and this module's signals over the candidate pages, and the gold mask."""
    from agent.search.definition import subject
    from agent.search.keyword_index import collection_index
    from agent.search.tokens import query_terms

    ix = collection_index(collection)
    texts = page_texts(ix)
    shares, code_terms = page_shares(ix, texts), CodeTerms(texts)
    bm = ix.page_bm25
    run.log(f"pages: {ix.pages.rows}, code share > 0.3 on {int((shares['code'] > 0.3).sum())}, "
            f"dup > 0.3 on {int((shares['dup'] > 0.3).sum())}")
    keys = ix.pages.keys()
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        z.update(shares)
        natural = not names_identifier(q.question)
        z["code_nl"] = shares["code"] * natural
        z["code_num_nl"] = shares["code_num"] * natural
        terms = set(query_terms(q.question))
        z["qcode"] = code_terms.share({t: float(bm.idf[bm.vocabulary.ids[t]]) for t in terms
                                       if t in bm.vocabulary.ids})
        asks_what = subject(q.question) is not None
        z["code_def"], z["qcode_def"] = shares["code"] * asks_what, z["qcode"] * asks_what
        rows.append(question_row(q, z, candidates(ps, raw), keys, SIGNALS))
    return rows


def grid(idea: str) -> np.ndarray:
    """Weight vectors (rows, SIGNALS order): the product's weights fixed, the idea's own axis."""
    (name, values), = IDEAS[idea].items()
    return product_grid(name, values, SIGNALS)


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    return product_report(rows, run, "Code and repeated pages, on top of the product weights: hybrid hit@1/hit@5",
                          {idea: grid(idea) for idea in IDEAS}, SIGNALS)


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS, shingle=SHINGLE)


if __name__ == "__main__":
    raise SystemExit(main())
