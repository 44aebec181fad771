"""Issue 16, questions asked in the other language than the document's: does the vector signal need more weight there?

On the 13-document tune split, 8 of the 9 questions asked in the other language than their document's miss rank 1
(bench/README 4i): the lexical signals find few shared terms, and the multilingual vector signal weighs 0.2. Per page,
its language is Chinese when more than `ZH_SHARE` of its letters are CJK ideographs; a question is Chinese when it
holds one. Signals, each fitted on top of the product's WEIGHTS (leave one document out, pooled devset + tune split
and the tune split alone, as bench/cv_prose.py): `vector_x`, the product's z-scored vector signal on the pages whose
language differs from the question's (0 on the others), an extra weight; `xpage`, 1 on those pages, a bonus or a
penalty (does a question's language predict its page's?). The evalset's test split is never read here.

    python -m bench.cv_xlang --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
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

NAME = "cv_xlang"
ZH_SHARE = 0.3
OWN = ("vector_x", "xpage")
SIGNALS = (*PRODUCT, *OWN)
IDEAS = {"vector_x": (0.0, 0.1, 0.2, 0.4, 0.6, 0.8), "xpage": (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)}
_ZH = re.compile(r"[\u4e00-\u9fff]")
_LETTER = re.compile(r"[A-Za-z\u4e00-\u9fff]")


def is_zh(text: str) -> bool:
    """Chinese when more than ZH_SHARE of the letters are CJK ideographs."""
    letters = len(_LETTER.findall(text))
    return bool(letters) and len(_ZH.findall(text)) / letters > ZH_SHARE


def cross_pages(page_zh: np.ndarray, question: str) -> np.ndarray:
    """1.0 on the pages whose language is not the question's."""
    return (page_zh != bool(_ZH.search(question))).astype(np.float64)


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and this module's over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index

    ix = collection_index(collection)
    page_zh = np.array([is_zh(t) for t in page_texts(ix)])
    keys = ix.pages.keys()
    run.log(f"{ix.pages.rows} pages, {int(page_zh.sum())} Chinese")
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        z["xpage"] = cross_pages(page_zh, q.question)
        z["vector_x"] = z["vector"] * z["xpage"]
        rows.append(question_row(q, z, candidates(ps, raw), keys, SIGNALS, cross=bool(z["xpage"][
            [i for i, k in enumerate(keys) if k in q.gold]].any())))
    return rows


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    cross = [r["id"] for r in rows if r["cross"]]
    run.log(f"questions whose gold page is in the other language: {len(cross)} {cross}")
    return {"cross": cross, **product_report(rows, run, "Questions in the other language: hybrid hit@1/hit@5",
                                             {idea: product_grid(idea, grid, SIGNALS) for idea, grid in IDEAS.items()},
                                             SIGNALS)}


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS, zh_share=ZH_SHARE)


if __name__ == "__main__":
    raise SystemExit(main())
