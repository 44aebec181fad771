"""Issue 16, the vector signal with each language's mean vector taken out (language centering), cross-validated.

Of the tune split's 120 questions that miss rank 1, 48 have a page of another document first, and the Chinese questions
asked over English documents mostly find a Chinese page of an unrelated manual (asymptote-faq-zh-cn p. 22 comes first
for five of them): a multilingual encoder puts a text near others of its language before others of its meaning.
Subtracting each language's mean embedding from the vectors of that language removes much of that component and
makes the representations more language-neutral (Libovicky et al. 2020, "On the language neutrality of pre-trained
multilingual representations"); the same step counters hubs, points that are near every query (Conneau et al. 2018).

`vector_c`: the best chunk's cosine per page after centering (a chunk's language is its page's, a question's whether it
holds an ideograph; the means are the collection's chunk vectors of each language), z-scored like `vector`, scored
on every chunk (no FAISS cut); its pages may be ranked (candidates) when a chunk is among the 100 best. Families on
top of the product's WEIGHTS: `vector_c` next to `vector`, and instead of it (`vector` 0). Leave one document out,
pooled devset + tune split and the tune split alone; the evalset's test split is never read here.

    python -m bench.cv_center --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_sections import beside_and_instead, product_report

NAME = "cv_center"
OWN = ("vector_c",)
SIGNALS = (*PRODUCT, *OWN)
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)
IDEAS = {"vector_c": GRID, "vector_c_instead": GRID}
FETCH = 100  # chunks whose pages become candidates (the product's _MIN_FETCH)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def centred(vectors: np.ndarray, chinese: np.ndarray) -> tuple[np.ndarray, dict[bool, np.ndarray]]:
    """Each row minus its language's mean row, to unit length; and the two means (a language with no rows: 0)."""
    means = {lang: vectors[chinese == lang].mean(axis=0) if (chinese == lang).any() else np.zeros(vectors.shape[1])
             for lang in (False, True)}
    return unit(vectors - np.where(chinese[:, None], means[True], means[False])), means


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's signals and `vector_c` over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore
    from agent.search.translation import is_chinese
    from agent.search.vector_index import all_vectors

    ix = collection_index(collection)
    keys = ix.pages.keys()
    chunk_zh = ix.chinese_pages[ix.chunk_page]
    stored = all_vectors(collection.snapshot().vectorstore.index).astype(np.float64)
    assert len(stored) == len(chunk_zh), (len(stored), len(chunk_zh))  # one vector per chunk, in chunk order
    vectors, means = centred(stored, chunk_zh)
    run.log(f"{len(vectors)} chunks, {int(chunk_zh.sum())} Chinese; |mean en| {np.linalg.norm(means[False]):.3f}, "
            f"|mean zh| {np.linalg.norm(means[True]):.3f}, cos(means) "
            f"{float(unit(means[False]) @ unit(means[True])):.3f}")
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        view = ps.view
        qv = unit(np.asarray(emb.embed_query(q.question), dtype=np.float64) - means[is_chinese(q.question)])
        sims = vectors @ qv
        page = view.page_max(sims)
        best = np.zeros(view.chunks, dtype=bool)
        best[np.argsort(-sims)[:FETCH]] = True
        z["vector_c"] = _zscore(page)
        rows.append(question_row(q, z, candidates(ps, raw, view.page_max(best.astype(np.float64)) > 0), keys, SIGNALS))
    return rows


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    grids = beside_and_instead("vector_c", "vector", GRID, SIGNALS)
    return product_report(rows, run, "Language-centred vectors: hybrid hit@1/hit@5", grids, SIGNALS)


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS)


if __name__ == "__main__":
    raise SystemExit(main())
