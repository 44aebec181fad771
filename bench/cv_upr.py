"""Issue 16, reranking by the embedded model: query likelihood (UPR, Sachan et al. 2022), cross-validated by document.

For each English question the product's hybrid search gives its top N pages; SmolLM2-135M (the embedded model,
llama.cpp) scores each page by the mean log-probability of the question's tokens after "Passage: <the hit's first
EXCERPT_CHARS characters>\\nPlease write a question based on this passage.\\nQuestion:". The reranked order is
z(hybrid score) + w * z(query likelihood), both z over the N pages; w is chosen like bench/cv_sweep: leave one document
out, each fold's w the best on the other documents by (hit@1 + hit@5) / 2, scored on the one left out (held-out),
next to the w chosen and scored on all (in-sample). Chinese questions are left out (SmolLM2 is English-centric).

Scoring costs ~1.5 s a page on one thread here, so questions are scored in a fixed pseudo-random order (hash of
the id) and cached in DIR/upr-scores-<shard>.json; `--budget` stops a run, the next run goes on where it stopped,
and `--shard i/n` lets n processes share the questions. The report covers the questions whose N pages are scored.

    python -m bench.cv_upr --data DIR --budget 1800 --shard 0/2   # score (and another process with 1/2)
    python -m bench.cv_upr --data DIR --report                    # cross-validate what is scored
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, load_average, markdown_table, parser, set_blas_threads
from bench.cv_common import cached_collection, cross_validate, hits
from bench.quality import _question_set

NAME = "cv_upr"
SETS = (("devset", "all"), ("evalset", "tune"))  # the evalset's test split is never read here
TOP = 5  # pages reranked: hit@5 is then the search's own, only the order inside the top 5 moves
EXCERPT_CHARS = 400  # the listwise reranker's excerpt (agent/chat/rerank.py), so both read the same text
W_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
UPR_PROMPT = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"


class QueryLikelihood:
    """Mean log-probability of a question's tokens given a passage, by SmolLM2 (llama.cpp, logits of every token)."""

    def __init__(self, threads: int = 1) -> None:
        import llama_cpp

        from agent.chat.embedded import find_gguf

        self.llama = llama_cpp.Llama(model_path=str(find_gguf()), n_ctx=1024, n_threads=threads,
                                     n_threads_batch=threads, logits_all=True, verbose=False)

    def __call__(self, passage: str, question: str) -> float:
        """The score UPR ranks by: higher when the passage makes the question likely."""
        text = " ".join(passage.split())[:EXCERPT_CHARS]
        prefix = self.llama.tokenize(UPR_PROMPT.format(passage=text).encode(), add_bos=True, special=False)
        asked = self.llama.tokenize((" " + question.strip()).encode(), add_bos=False, special=False)[:128]
        self.llama.reset()
        self.llama.eval(prefix + asked)
        logits = np.asarray(self.llama.scores[len(prefix) - 1:len(prefix) + len(asked) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        return float(logp[np.arange(len(asked)), asked].mean())


def _order(qid: str) -> str:
    """A fixed pseudo-random order of the questions, so a run cut by --budget scores an unbiased sample."""
    return hashlib.sha256(qid.encode()).hexdigest()


def searched(data: Path, run: Run) -> list[dict[str, Any]]:
    """Per English question: its top TOP hits (file, page, text, hybrid score) and which are gold."""
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings
    from agent.search.retrieval import search

    emb, rows = LocalEmbeddings(), []
    for qset, split in SETS:
        pdfs, questions = _question_set(qset, split, None, load_questions)
        collection = cached_collection(pdfs, data / f"data-{qset}-{split}", emb, run)
        for q in (q for q in questions if q.lang == "en"):
            found = [h.source() for h in search(q.question, [collection], embeddings=emb, k=TOP)]
            rows.append({"id": q.id, "file": q.file, "lang": q.lang, "set": f"{qset}:{split}", "question": q.question,
                         "hits": [(s["file"], s["page"], s["text"], s["score"]) for s in found],
                         "gold": np.array([(s["file"], s["page"]) in q.gold for s in found], dtype=bool)})
    return sorted(rows, key=lambda r: _order(r["id"]))


def _key(row: dict[str, Any], hit: Sequence[Any]) -> str:
    return f"{row['id']}|{hit[0]}|{hit[1]}|{EXCERPT_CHARS}"


def _save(path: Path, scores: dict[str, float]) -> None:
    """Temp file + rename: a run killed mid-write keeps the previous cache."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(scores), encoding="utf-8")
    os.replace(tmp, path)


def load_scores(data: Path) -> dict[str, float]:
    """Every shard's cached scores."""
    out: dict[str, float] = {}
    for path in sorted(data.glob("upr-scores-*.json")):
        out.update(json.loads(path.read_text(encoding="utf-8")))
    return out


def score(rows: Sequence[dict[str, Any]], data: Path, shard: tuple[int, int], budget: float, run: Run) -> None:
    """Score this shard's questions' hits (cached ones skipped) until `budget` seconds have passed."""
    path, done = data / f"upr-scores-{shard[0]}.json", load_scores(data)
    mine = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    model, t0, n = QueryLikelihood(), time.perf_counter(), 0
    for row in rows[shard[0]::shard[1]]:
        if time.perf_counter() - t0 > budget:
            break
        for hit in row["hits"]:
            if _key(row, hit) not in done:
                mine[_key(row, hit)] = model(hit[2], row["question"])
                n += 1
        _save(path, mine)
    spent = time.perf_counter() - t0
    run.log(f"scored {n} pages in {spent:.0f} s ({spent / max(n, 1):.2f} s a page), load {load_average()}")


def features(rows: Sequence[dict[str, Any]], scores: dict[str, float]) -> list[dict[str, Any]]:
    """The rows whose hits are all scored, with z (hits x 2): z(hybrid score), z(query likelihood)."""
    def z(values: list[float]) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        return (v - v.mean()) / v.std() if len(v) > 1 and v.std() > 0 else np.zeros(len(v))

    out = []
    for row in rows:
        keys = [_key(row, h) for h in row["hits"]]
        if keys and all(k in scores for k in keys):
            out.append({**row, "z": np.stack([z([h[3] for h in row["hits"]]), z([scores[k] for k in keys])], axis=1)})
    return out


def report(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """Hybrid order, query likelihood alone, and the fusion with w cross-validated, per set."""
    weights = np.array([[1.0, w] for w in W_GRID])
    sets = np.array([r["set"] for r in rows])
    cv = cross_validate(rows, weights)
    fixed = {"hybrid (w=0)": hits(rows, weights[:1])[:, 0],
             "query likelihood alone": hits(rows, np.array([[0.0, 1.0]]))[:, 0]}
    table, results = [], {}
    for label, h in [*fixed.items(), ("fusion, w in-sample", cv["in"]), ("fusion, w held-out", cv["held"])]:
        cells = [f"{h[sets == st, 0].mean():.3f}/{h[sets == st, 1].mean():.3f}" for st in sorted(set(sets))]
        table.append([label, f"{h[:, 0].mean():.3f}", f"{h[:, 1].mean():.3f}", *cells])
        results[label] = {"hit1": h[:, 0].mean(), "hit5": h[:, 1].mean()}
    results["in_w"] = float(cv["in_weights"][1])
    results["fold_w"] = {f: float(w[1]) for f, w in cv["chosen"].items()}
    run.log("folds chose w: " + ", ".join(f"{f}={w[1]:g}" for f, w in cv["chosen"].items()))
    run.table(f"English questions, hybrid top {TOP} reranked by query likelihood ({len(rows)} questions; "
              f"per set " + ", ".join(f"{st} {int((sets == st).sum())}" for st in sorted(set(sets))) + ")",
              markdown_table(["order", "hit@1", "hit@5", *(f"{st} @1/@5" for st in sorted(set(sets)))], table))
    return results


def cost(rows: Sequence[dict[str, Any]], searches: int, run: Run) -> dict[str, Any]:
    """Seconds to score one search's TOP pages, with 1 and 2 llama.cpp threads (the first `searches` questions)."""
    out = {}
    for threads in (1, 2):
        model = QueryLikelihood(threads)
        model(rows[0]["hits"][0][2], rows[0]["question"])  # warm-up
        t0, before = time.perf_counter(), load_average()
        for row in rows[:searches]:
            for hit in row["hits"]:
                model(hit[2], row["question"])
        seconds = (time.perf_counter() - t0) / searches
        out[f"{threads} thread(s)"] = {"s_per_search": round(seconds, 2), "load_before": before,
                                       "load_after": load_average()}
        run.log(f"{threads} thread(s): {seconds:.2f} s per search of {TOP} pages, load {before} -> {load_average()}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="ingested collections (see cv_sweep) and the score cache")
    p.add_argument("--budget", type=float, default=600.0, help="seconds of scoring in this run")
    p.add_argument("--shard", default="0/1", help="i/n: score every n-th question from the i-th")
    p.add_argument("--report", action="store_true", help="only cross-validate the cached scores")
    p.add_argument("--cost", type=int, default=0, metavar="K", help="only time the scoring of K searches")
    args = p.parse_args(argv)
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    set_blas_threads(1)
    run.params = {"top": TOP, "excerpt_chars": EXCERPT_CHARS, "w_grid": W_GRID, "prompt": UPR_PROMPT,
                  "objective": "(hit@1 + hit@5) / 2, leave one document out", "questions": "English only"}
    args.data.mkdir(parents=True, exist_ok=True)
    rows = searched(args.data, run)
    if args.cost:
        run.results = cost(rows, args.cost, run)
        run.finish()
        return 0
    if not args.report:
        index, count = (int(x) for x in args.shard.split("/"))
        score(rows, args.data, (index, count), args.budget, run)
    run.results = report(features(rows, load_scores(args.data)), run)
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
