"""Issue 16, paraphrased questions: does the best short passage of a page match the question's meaning better than
its 800-character chunks do?

The product's vector signal is the best cosine of the question with a page's chunks. The offline model is a
sentence encoder (USE): one vector for 800 characters averages several topics, so a paraphrased question meets a
diluted vector (most misses on the new tune documents are paraphrases or another document first, bench/README 4i).
Here each page's text is cut into passages of one or two sentences (`passages`: lines and sentence ends, pieces
merged up to `MIN_WEIGHT` characters, CJK ideographs counting `CJK_WEIGHT`), every passage embedded by the product's
model, and a page scored by its best passage. Signals, each fitted on top of the product's WEIGHTS (leave one
document out, pooled devset + tune split and the tune split alone, as bench/cv_xlang.py): `passage`, that best cosine
z-scored as the product z-scores its vector signal; `passage_f<floor>`, max(cosine - floor, 0), a raw bonus as
`title_sem` is. The evalset's test split is never read here.

    python -m bench.cv_passages --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_prose import page_texts
from bench.cv_sections import product_grid, product_report

NAME = "cv_passages"
MIN_WEIGHT = 120
CJK_WEIGHT = 3
FLOORS = (0.4, 0.5, 0.6)
OWN = ("passage", *(f"passage_f{int(f * 10)}" for f in FLOORS))
SIGNALS = (*PRODUCT, *OWN)
_Z = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)
_RAW_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0)
IDEAS = {name: (_Z if name == "passage" else _RAW_GRID) for name in OWN}
_CUT = re.compile(r"\n+|(?<=[.!?;:])\s+|(?<=[。！？；：])")
_CJK = re.compile(r"[\u3400-\u9fff]")


def weight(text: str) -> int:
    """A piece's length with each ideograph counting CJK_WEIGHT (about one English word's worth of characters)."""
    return len(text) + (CJK_WEIGHT - 1) * len(_CJK.findall(text))


def passages(text: str) -> list[str]:
    """The page cut at lines and sentence ends, consecutive pieces merged until each weighs MIN_WEIGHT."""
    out: list[str] = []
    current = ""
    for piece in (p.strip() for p in _CUT.split(text)):
        if not piece:
            continue
        current = f"{current} {piece}" if current else piece
        if weight(current) >= MIN_WEIGHT:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


def passage_index(texts: Sequence[str], emb: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every page's passages embedded (unit rows) and each row's page."""
    owners, pieces = [], []
    for page, text in enumerate(texts):
        cut = passages(text)
        pieces += cut
        owners += [page] * len(cut)
    return emb.embed_array(pieces), np.array(owners, dtype=np.int64)


def best_passage(vectors: np.ndarray, owners: np.ndarray, qvec: np.ndarray, pages: int) -> np.ndarray:
    """Per page, the best cosine of the question with one of its passages (-1 for a page without text)."""
    best = np.full(pages, -1.0)
    np.maximum.at(best, owners, vectors @ qvec)
    return best


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and this module's over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore

    ix = collection_index(collection)
    vectors, owners = passage_index(page_texts(ix), emb)
    keys = ix.pages.keys()
    run.log(f"{ix.pages.rows} pages, {len(owners)} passages")
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        best = best_passage(vectors, owners, emb.embed_array([q.question])[0], ix.pages.rows)
        z["passage"] = _zscore(best)
        z.update({f"passage_f{int(f * 10)}": np.maximum(best - f, 0.0) for f in FLOORS})
        rows.append(question_row(q, z, candidates(ps, raw), keys, SIGNALS))
    return rows


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    return product_report(rows, run, "The best passage of a page: hybrid hit@1/hit@5",
                          {idea: product_grid(idea, grid, SIGNALS) for idea, grid in IDEAS.items()}, SIGNALS)


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS, min_weight=MIN_WEIGHT,
                       cjk_weight=CJK_WEIGHT, floors=FLOORS)


if __name__ == "__main__":
    raise SystemExit(main())
