"""Issue 16, document-level evidence: does "the document whose pages, together, hold the question" generalise?

One miss class of the tune split is "another document first" (bench/README.md 4d): a short question whose best
page lies in a document that, as a whole, says little about it. Each signal here is computed per DOCUMENT (file)
and given to every page of it, fitted on top of the product's WEIGHTS (its own weight on a grid with 0):
`doc_bm25` BM25 of the question against each file as one text, z-scored across the files; `doc_top<k>` the mean
of the file's k best pages' product score; `doc_cover` the share of the question's idf found anywhere in the file;
`doc_vec` the file's best chunk cosine, z-scored across the files. Gated variants: `_le4` only for questions of at
most 4 index terms, `_split` only when the product's two best pages lie in different files. Scored like
bench/cv_prose.py: leave one document out, pooled (devset + tune split, 32 folds) and the tune split's own CV.
The evalset's test split is never read here.

    python -m bench.cv_docs --set pooled --data DIR   # DIR/data-<set>-<split>: collections kept (cv_sweep's)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import Run
from bench.cv_common import PRODUCT, candidates, family_main, product_signals, question_row
from bench.cv_prose import page_texts
from bench.cv_sections import product_grid, product_report

NAME = "cv_docs"
TOPK = (1, 3, 5)
SHORT = 4  # a question of at most this many index terms is "short" (retrieval.SHORT_QUERY's value)
BASE = ("doc_bm25", *(f"doc_top{k}" for k in TOPK), "doc_cover", "doc_vec")
GATES = ("", "_le4", "_split")
DOC_SIGNALS = tuple(f"{s}{g}" for s in BASE for g in GATES)
SIGNALS = (*PRODUCT, *DOC_SIGNALS)
Z_GRID = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
COVER_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
IDEAS = {name: (COVER_GRID if name.startswith("doc_cover") else Z_GRID) for name in DOC_SIGNALS}


def _z(values: np.ndarray) -> np.ndarray:
    """z-score across the files (0 when they all agree)."""
    sd = values.std()
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


class Files:
    """One collection's files: each page's file, and every file's text as one BM25 document and term set."""

    def __init__(self, ix: Any) -> None:
        from agent.search.lexical import BM25Index
        from agent.search.tokens import tokenize

        self.of_page = np.asarray(ix.pages.file)
        self.count = len(ix.pages.files)
        texts = [""] * self.count
        for p, text in enumerate(page_texts(ix)):
            texts[int(self.of_page[p])] += "\n" + text
        self.bm25 = BM25Index(texts)
        self.terms = [set(tokenize(t)) for t in texts]

    def best(self, page_values: np.ndarray, k: int) -> np.ndarray:
        """Per file: the mean of its k best pages' values."""
        out = np.zeros(self.count)
        for f in range(self.count):
            v = np.sort(page_values[self.of_page == f])[::-1][:k]
            out[f] = v.mean() if len(v) else 0.0
        return out

    def signals(self, terms: Sequence[str], idf: dict[str, float], fused: np.ndarray,
                vector: np.ndarray) -> dict[str, np.ndarray]:
        """Every BASE signal per file."""
        total = sum(idf.values())
        out = {"doc_bm25": _z(self.bm25.scores(list(terms)).astype(np.float64)),
               "doc_cover": np.array([sum(w for t, w in idf.items() if t in have) / total if total else 0.0
                                      for have in self.terms]),
               "doc_vec": _z(self.best(vector, 1))}
        out.update({f"doc_top{k}": self.best(fused, k) for k in TOPK})
        return out


def doc_signals(files: Files, terms: Sequence[str], idf: dict[str, float], fused: np.ndarray,
                vector: np.ndarray) -> dict[str, np.ndarray]:
    """Every DOC_SIGNALS column per page (its file's value), gated as named."""
    top2 = np.argsort(-fused, kind="stable")[:2]
    gate = {"": True, "_le4": len(terms) <= SHORT,
            "_split": len(top2) == 2 and files.of_page[top2[0]] != files.of_page[top2[1]]}
    per_file = files.signals(terms, idf, fused, vector)
    return {f"{s}{g}": per_file[s][files.of_page] * float(gate[g]) for s in BASE for g in GATES}


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the product's and the document-level signals over its candidate pages, and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import WEIGHTS, _fuse
    from agent.search.tokens import query_terms

    ix = collection_index(collection)
    files, keys, bm = Files(ix), ix.pages.keys(), ix.page_bm25
    run.log(f"{files.count} files, {ix.pages.rows} pages")
    rows = []
    for q in questions:
        ps, raw, z = product_signals(q.question, collection, emb)
        terms = query_terms(q.question)
        idf = {t: float(bm.idf[bm.vocabulary.ids[t]]) for t in set(terms) if t in bm.vocabulary.ids}
        z.update(doc_signals(files, terms, idf, _fuse(ps.pages, WEIGHTS, "hybrid"), raw["vector"]))
        rows.append(question_row(q, z, candidates(ps, raw), keys, SIGNALS))
    return rows


def grid(idea: str) -> np.ndarray:
    """Weight vectors (rows, SIGNALS order): the product's weights fixed, the idea's own axis."""
    return product_grid(idea, IDEAS[idea], SIGNALS)


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Per family: pooled CV (devset and tune rows apart) and the tune split's own CV, in-sample and held out."""
    return product_report(rows, run, "Document-level evidence, on top of the product weights: hybrid hit@1/hit@5",
                          {idea: grid(idea) for idea in IDEAS}, SIGNALS)


def main(argv: list[str] | None = None) -> int:
    return family_main(argv, __doc__, NAME, collect, report, ideas=IDEAS, short=SHORT, topk=TOPK)


if __name__ == "__main__":
    raise SystemExit(main())
