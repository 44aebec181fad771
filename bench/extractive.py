"""Extractive answers on the devset: how often the quoted sentences hold the reference answer.

For every devset question, the product's hybrid search gives the top-5 numbered excerpts;
`agent.chat.extractive.best_sentences` picks 3 sentences. A quote set "holds the answer" when
the reference answer (or an accepted alternative) occurs in it. The share of vector similarity
in a sentence's score is chosen by leave-one-document-out: for each PDF, the share best on the
other PDFs is scored on its questions (held-out); in-sample is the best share on all of them.

    python -m bench.extractive            # 26 PDFs, 390 questions: ingest ~1 min, selection ~1 min
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import Run, markdown_table, parser
from bench.quality import ingest_all
from tests.support import DEVSET, DEVSET_PDFS

NAME = "extractive"
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _holds(quotes: list[Any], answers: list[str]) -> tuple[bool, bool]:
    """(answer in any quote, answer in the first quote), ignoring case and spacing."""
    norm = [" ".join(a.lower().split()) for a in answers if a.strip()]
    texts = [" ".join(q.text.lower().split()) for q in quotes]
    return any(a in t for a in norm for t in texts), bool(texts) and any(a in texts[0] for a in norm)


def measure(questions: list[dict[str, Any]], collection: Any, emb: Any, run: Run) -> dict[str, Any]:
    from agent.chat.citations import number_new
    from agent.chat.extractive import best_sentences
    from agent.search.retrieval import search

    rows: dict[float, list[dict[str, Any]]] = defaultdict(list)
    seconds: list[float] = []
    for q in questions:
        sources = number_new([], [h.source() for h in search(q["question"], [collection], embeddings=emb, k=5)])
        answers = [q["answer"], *q.get("alt_answers", [])]
        reachable = _holds([type("S", (), {"text": s["text"]})() for s in sources], answers)[0]
        for share in SHARES:
            t0 = time.perf_counter()
            quotes = best_sentences(q["question"], sources, emb.embed_documents, similarity_share=share)
            seconds.append(time.perf_counter() - t0)
            held, first = _holds(quotes, answers)
            rows[share].append({"id": q["id"], "file": q["file"], "lang": q["lang"], "reachable": reachable,
                                "held": held, "first": first})
    run.log(f"selection p50 {sorted(seconds)[len(seconds) // 2] * 1000:.1f} ms, max {max(seconds) * 1000:.0f} ms")
    return {"rows": rows, "p50_ms": sorted(seconds)[len(seconds) // 2] * 1000, "max_ms": max(seconds) * 1000}


def _rate(rows: list[dict[str, Any]], key: str) -> float:
    reachable = [r for r in rows if r["reachable"]]
    return sum(r[key] for r in reachable) / len(reachable) if reachable else float("nan")


def leave_one_document_out(rows: dict[float, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per file, the share best on the other files (objective: answer held in the 3 quotes), scored on it."""
    files = sorted({r["file"] for r in rows[SHARES[0]]})
    held_out: list[dict[str, Any]] = []
    chosen: dict[str, float] = {}
    for f in files:
        best = max(SHARES, key=lambda s: (_rate([r for r in rows[s] if r["file"] != f], "held"), -abs(s - 0.5)))
        chosen[f] = best
        held_out += [r for r in rows[best] if r["file"] == f]
    return held_out, chosen


def main(argv: list[str] | None = None) -> int:
    import json

    from agent.search.embeddings import make_embeddings

    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    run = Run(NAME, args)
    questions = [json.loads(line) for line in (DEVSET / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    pdfs = sorted(p for p in DEVSET_PDFS.glob("*.pdf") if p.name in {q["file"] for q in questions})
    emb = make_embeddings("local", ollama_host="http://127.0.0.1:11434", timeout=1)
    with tempfile.TemporaryDirectory() as tmp:
        collection, _ = ingest_all(pdfs, Path(tmp), emb, run)
        result = measure(questions, collection, emb, run)
    rows = result["rows"]
    held_out, chosen = leave_one_document_out(rows)
    table = [[f"share {s}", len([r for r in rows[s] if r["reachable"]]), f"{_rate(rows[s], 'held'):.3f}",
              f"{_rate(rows[s], 'first'):.3f}"] for s in SHARES]
    table.append(["held out (leave one PDF out)", len([r for r in held_out if r["reachable"]]),
                  f"{_rate(held_out, 'held'):.3f}", f"{_rate(held_out, 'first'):.3f}"])
    for lang in ("en", "zh"):
        part = [r for r in held_out if r["lang"] == lang]
        table.append([f"held out, {lang}", len([r for r in part if r["reachable"]]), f"{_rate(part, 'held'):.3f}",
                      f"{_rate(part, 'first'):.3f}"])
    run.table("Answer held in the quotes (questions whose answer is in the top-5 excerpts)",
              markdown_table(["similarity share", "n", "in the 3 quotes", "in the first quote"], table))
    run.results.update(chosen=chosen, p50_ms=result["p50_ms"], max_ms=result["max_ms"],
                       reachable=len([r for r in rows[SHARES[0]] if r["reachable"]]), questions=len(questions))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
