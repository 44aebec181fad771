"""Chunk size chosen by cross-validation by document (issue 16): the product's search at several chunk sizes.

For each chunk size (overlap 15% of it, as the default 120 of 800) the pooled set (the devset's 26 documents and
the evalset's tune split) is ingested with the product pipeline and every question searched in hybrid mode with
the product's weights. Leave one document out: for each document, the chunk size best on the other documents
(objective (hit@1 + hit@5) / 2, ties to the default) is scored on its questions. The held-out figure is compared
with the default's; the test split is never read.

    python -m bench.chunk_size_cv --sizes 400,800,1200
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, markdown_table, parser, set_blas_threads
from bench.quality import _question_set, ingest_all

NAME = "chunk_size_cv"
DEFAULT = 800
SETS = (("devset", "all"), ("evalset", "tune"))


def hits_at(size: int, sets: Sequence[tuple[str, str, list[Path], list[Any]]], emb: Any, run: Run) -> np.ndarray:
    """(questions, 2): hybrid hit@1 and hit@5 of every question with chunks of `size` characters."""
    from agent.search.retrieval import search

    out = []
    for qset, _, pdfs, questions in sets:
        with tempfile.TemporaryDirectory(prefix="bench-chunk-") as tmp:
            t0 = time.perf_counter()
            collection, _ = ingest_all(pdfs, Path(tmp) / "data", emb, run,
                                       {"chunk_size": size, "chunk_overlap": size * 15 // 100})
            run.log(f"size {size}, {qset}: ingested in {time.perf_counter() - t0:.0f} s")
            for q in questions:
                hits = search(q.question, [collection], embeddings=emb, k=5, mode="hybrid")
                ranked = [(h.document.metadata.get("file"), int(h.document.metadata.get("page", 0))) for h in hits]
                out.append([float(bool(ranked) and ranked[0] in q.gold), float(any(r in q.gold for r in ranked))])
    return np.array(out)


def cross_validate(h: np.ndarray, files: np.ndarray, sizes: Sequence[int]) -> tuple[np.ndarray, dict[str, int]]:
    """Leave one document out over `h` (sizes, questions, 2): held-out hits and the size each fold chose."""
    objective = h.mean(axis=2)
    held = np.zeros(h.shape[1:])
    chosen = {}
    for f in sorted(set(files)):
        train = files != f
        scores = objective[:, train].mean(axis=1)
        best = max(range(len(sizes)), key=lambda i: (round(scores[i], 9), sizes[i] == DEFAULT))
        held[~train] = h[best, ~train]
        chosen[str(f)] = sizes[best]
    return held, chosen


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="400,800,1200", help="chunk sizes in characters (the default 800 included)")
    args = p.parse_args(argv)
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings

    sizes = sorted({int(s) for s in args.sizes.split(",")} | {DEFAULT})
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    sets = [(qset, split, *_question_set(qset, split, None, load_questions)) for qset, split in SETS]
    questions = [(qset, q) for qset, _, _, qs in sets for q in qs]
    files = np.array([q.file for _, q in questions])
    set_blas_threads(1)
    run.params = {"sizes": sizes, "overlap": "15% of the size", "sets": [f"{a}:{b}" for a, b in SETS],
                  "questions": len(questions), "objective": "(hit@1 + hit@5) / 2, leave one document out"}
    emb = LocalEmbeddings()
    h = np.stack([hits_at(size, sets, emb, run) for size in sizes])
    held, chosen = cross_validate(h, files, sizes)
    by_set = np.array([qset for qset, _ in questions])
    rows = [[f"{size} (fixed)", *(f"{h[i, by_set == s, 0].mean():.3f}/{h[i, by_set == s, 1].mean():.3f}"
                                  for s in ("devset", "evalset"))] for i, size in enumerate(sizes)]
    rows.append(["held out (size chosen per fold)",
                 *(f"{held[by_set == s, 0].mean():.3f}/{held[by_set == s, 1].mean():.3f}" for s in ("devset", "evalset"))])
    run.table("Hybrid hit@1/hit@5 by chunk size (pooled set, product weights)",
              markdown_table(["chunk size", "devset", "evalset tune"], rows))
    run.log("folds chose: " + ", ".join(f"{s}: {sum(v == s for v in chosen.values())}" for s in sizes))
    run.results = {"sizes": sizes, "fixed": {str(s): {"hit1": h[i, :, 0].mean(), "hit5": h[i, :, 1].mean()}
                                             for i, s in enumerate(sizes)},
                   "held": {"hit1": held[:, 0].mean(), "hit5": held[:, 1].mean()}, "chosen": chosen,
                   "per_question": {q.id: h[:, j].tolist() for j, (_, q) in enumerate(questions)}}
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
