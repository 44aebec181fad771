"""Pieces every cross-validation bench (bench/cv_*.py) shares: the cached collection, a question's row, its candidate
pages, a weight row, the hits and the leave-one-document-out CV, and the four reports (pooled and tune split alone,
by (hit@1 + hit@5) / 2 and by hit@1 alone)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.search.retrieval import _RAW, WEIGHTS
from bench.common import Run, parser, set_blas_threads
from bench.quality import _question_set, ingest_all

#: the product's signals, as it weighs them (`RAW` ones fused as they are, the others z-scored)
PRODUCT = tuple(WEIGHTS)
RAW = _RAW


def weight_vector(weights: dict[str, float], signals: Sequence[str]) -> list[float]:
    """A weights dict as one row over `signals` (0 for a signal it does not name)."""
    return [weights.get(s, 0.0) for s in signals]


def product_signals(question: str, collection: Any,
                    emb: Any) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The product's page signals of `question`: as computed (`ps`), raw per PRODUCT name (0 where absent), and
    as the fusion sees them (`RAW` ones as they are, the others z-scored)."""
    from agent.search.retrieval import _zscore, page_signals

    ps = page_signals(question, [collection], embeddings=emb, lexical=True, vector=True)
    assert ps is not None
    raw = {name: ps.pages.get(name, np.zeros(ps.view.pages)) for name in PRODUCT}
    return ps, raw, {name: (v if name in RAW else _zscore(v)) for name, v in raw.items()}


def candidates(ps: Any, raw: dict[str, np.ndarray], extra: np.ndarray | None = None) -> np.ndarray:
    """The pages the product can rank: chunk BM25, a fetched vector, a matching title or a translated question's
    words (`extra`: a bench's own)."""
    found = (raw["bm25_chunk"] > 0) | ps.view.page_max(ps.found) | (raw["heading"] > 0) | (raw["translation"] > 0)
    return np.flatnonzero(found if extra is None else found | extra)


def question_row(q: Any, z: dict[str, np.ndarray], cand: np.ndarray, keys: Sequence[Any], signals: Sequence[str],
                 **extra: Any) -> dict[str, Any]:
    """One question's row for `cross_validate`: its signals over the candidate pages and which of them are gold."""
    return {"id": q.id, "file": q.file, "lang": q.lang, **extra, "z": np.stack([z[s][cand] for s in signals], axis=1),
            "gold": np.array([keys[int(p)] in q.gold for p in cand])}


def four_reports(rows: list[dict[str, Any]], report: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """`report(rows, title, at1=...)` over the pooled rows and the tune split's, with both objectives."""
    tune = [r for r in rows if r["set"] == "evalset:tune"]
    return {"pooled": report(rows, "Pooled (devset + tune split)"), "tune": report(tune, "Tune split alone"),
            "pooled_hit1": report(rows, "Pooled, weights chosen by hit@1 alone", at1=1.0),
            "tune_hit1": report(tune, "Tune split alone, weights chosen by hit@1 alone", at1=1.0)}


def hits(rows: Sequence[dict[str, Any]], weights: np.ndarray) -> np.ndarray:
    """(questions, configs, 2): hit@1 and hit@5 of every question under every weight vector."""
    out = np.zeros((len(rows), len(weights), 2))
    for i, r in enumerate(rows):
        if not r["gold"].any():
            continue
        scores = r["z"] @ weights.T  # (candidates, configs)
        best_gold = scores[r["gold"]].max(axis=0)
        above = (scores[~r["gold"]] > best_gold).sum(axis=0)  # ties go to the gold page
        out[i, :, 0] = above < 1
        out[i, :, 1] = above < 5
    return out


def cross_validate(rows: Sequence[dict[str, Any]], weights: np.ndarray, at1: float = 0.5) -> dict[str, Any]:
    """Leave-one-document-out: per fold, the config best on the other documents, scored on this one."""
    h = hits(rows, weights)
    objective = at1 * h[:, :, 0] + (1 - at1) * h[:, :, 1]  # per question; (hit@1 + hit@5) / 2 by default
    files = np.array([r["file"] for r in rows])
    held = np.zeros((len(rows), 2))
    chosen = {}
    for f in sorted(set(files)):
        train = files != f
        best = int(np.argmax(objective[train].mean(axis=0)))
        held[~train] = h[~train, best]
        chosen[f] = weights[best]
    in_best = int(np.argmax(objective.mean(axis=0)))
    return {"held": held, "in": h[:, in_best], "in_weights": weights[in_best], "chosen": chosen}


def cached_collection(pdfs: Sequence[Path], data_dir: Path, emb: Any, run: Run) -> Any:
    """The collection of `pdfs` in `data_dir`: ingested by the product pipeline unless a run before did so
    (`ingested.json` lists the PDFs of a finished ingest)."""
    from agent.search.embeddings import LOCAL_MODEL_ID
    from agent.search.store import Collection

    done, names = data_dir / "ingested.json", sorted(p.name for p in pdfs)
    if done.exists() and json.loads(done.read_text(encoding="utf-8")) == names:
        run.log(f"reusing {data_dir}")
        return Collection(data_dir, "default", emb, LOCAL_MODEL_ID)
    t0 = time.perf_counter()
    collection, _ = ingest_all(list(pdfs), data_dir, emb, run)
    done.write_text(json.dumps(names), encoding="utf-8")
    run.log(f"ingested in {time.perf_counter() - t0:.0f} s")
    return collection


def study_sets(qset: str) -> list[tuple[str, str]]:
    """The (set, split) pairs a bench studies: pooled is the devset and the evalset's tune split."""
    return [("devset", "all"), ("evalset", "tune")] if qset == "pooled" else \
        [(qset, "all" if qset == "devset" else "tune")]


def set_rows(sets: Sequence[tuple[str, str]], data: Path | None, collect: Callable[..., list[dict[str, Any]]],
             run: Run) -> list[dict[str, Any]]:
    """`collect(questions, collection, emb, run)`'s rows over every set, each tagged with its set (never the test
    split); the collections are cached in `data` (else a temp dir)."""
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings

    emb, rows = LocalEmbeddings(), []
    for qset, split in sets:
        assert split != "test"
        pdfs, questions = _question_set(qset, split, None, load_questions)
        with tempfile.TemporaryDirectory(prefix="bench-cv-") as tmp:
            collection = cached_collection(pdfs, (data or Path(tmp)) / f"data-{qset}-{split}", emb, run)
            rows += [{**r, "set": f"{qset}:{split}"} for r in collect(questions, collection, emb, run)]
    return rows


def family_main(argv: list[str] | None, doc: str, name: str, collect: Callable[..., list[dict[str, Any]]],
                report: Callable[[list[dict[str, Any]], Run], dict[str, Any]], **params: Any) -> int:
    """The command line of a bench whose families sit on top of the product's weights: `--set`, `--data`, the rows
    of the studied sets, `report`'s tables."""
    p = parser(doc.split("\n\n")[0])
    p.add_argument("--set", dest="qset", choices=("devset", "evalset", "pooled"), default="pooled")
    p.add_argument("--data", type=Path, default=None, help="the collections of bench.cv_sweep --data (reused)")
    args = p.parse_args(argv)
    run = Run(f"{name}-{args.qset}", args, argv if argv is not None else sys.argv[1:])
    sets = study_sets(args.qset)
    set_blas_threads(1)
    run.params = {"sets": sets, **params, "objective": "(hit@1 + hit@5) / 2, leave one document out",
                  "base": "product WEIGHTS fixed"}
    run.results = report(set_rows(sets, args.data, collect, run), run)
    run.finish()
    return 0
