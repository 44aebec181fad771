"""Retrieval evaluation on a question set (e.g. the devset).

For each question, search a collection holding ALL the set's PDFs (the realistic
setting) and check whether a gold page (`page` or any of `alt_pages`, of the gold
`file`) is among the pages of the top-k chunks. Reported per mode (vector, bm25,
hybrid), per language, per kind (text, table, manual, malformed, scanned =
needs_ocr) and for the long-manual questions per language.

Collections are built by the app's own ingest pipeline, so the figures are the app's.

Run:  python -m agent eval QUESTIONS.jsonl --pdfs DIR [--json]
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("vector", "bm25", "hybrid")
KINDS = ("text", "table", "manual", "malformed", "scanned")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    file: str
    page: int
    alt_pages: tuple[int, ...] = ()
    lang: str = "en"
    kind: str | None = None
    needs_ocr: bool = False

    @property
    def gold(self) -> frozenset[tuple[str, int]]:
        return frozenset((self.file, p) for p in (self.page, *self.alt_pages))

    @property
    def category(self) -> str:
        """text (no kind), table, manual, malformed, ...; scanned when it needs OCR."""
        if self.needs_ocr:
            return "scanned"
        return self.kind or "text"


def load_questions(path: str | Path) -> list[Question]:
    """Questions from a JSONL file; answerable ones only (those with a file and page)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("file") is None or row.get("page") is None:
                continue
            out.append(Question(
                id=str(row.get("id", f"line{n}")), question=row["question"], file=row["file"],
                page=int(row["page"]), alt_pages=tuple(int(p) for p in row.get("alt_pages") or ()),
                lang=row.get("lang", "en"), kind=row.get("kind") or None,
                needs_ocr=bool(row.get("needs_ocr", False))))
    return out


# ---------------------------------------------------------------- metrics

def hit_at_k(ranked_pages: Sequence[Any], gold_pages: Iterable[Any], k: int) -> float:
    """1.0 if any of the first k ranked pages is a gold page, else 0.0."""
    gold = set(gold_pages)
    return 1.0 if any(p in gold for p in list(ranked_pages)[:k]) else 0.0


def reciprocal_rank(ranked_pages: Sequence[Any], gold_pages: Iterable[Any], k: int | None = None) -> float:
    """1/rank of the first gold page among the ranked pages (first k if given), else 0."""
    gold = set(gold_pages)
    for i, p in enumerate(list(ranked_pages)[:k] if k else ranked_pages):
        if p in gold:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    data = sorted(values)
    pos = (len(data) - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


# ---------------------------------------------------------------- evaluation

@dataclass
class Row:
    """Metrics of one (mode, group) cell."""
    mode: str
    group: str
    n: int
    hits: dict[int, float]
    mrr: float


@dataclass
class Report:
    ks: tuple[int, ...]
    rows: list[Row]
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    misses: dict[str, list[str]] = field(default_factory=dict)  # mode -> question ids (miss at max k)
    per_question: dict[str, dict[str, int | None]] = field(default_factory=dict)  # mode -> id -> rank

    def get(self, mode: str, group: str) -> Row | None:
        return next((r for r in self.rows if r.mode == mode and r.group == group), None)


def _groups(q: Question) -> list[str]:
    groups = ["all", f"lang:{q.lang}", f"kind:{q.category}"]
    if q.kind == "manual":
        groups.append(f"manual:{q.lang}")
    return groups


GROUP_ORDER = ["all", "lang:en", "lang:zh", "kind:text", "kind:table", "kind:manual",
               "manual:en", "manual:zh", "kind:malformed", "kind:scanned"]

SearchFn = Callable[[str, str, int], Sequence[Any]]  # (question, mode, k) -> hits


def _hit_page(hit: Any) -> tuple[str, int]:
    doc = getattr(hit, "document", hit)
    meta = doc.metadata
    return str(meta.get("file")), int(meta.get("page"))


def evaluate(questions: Sequence[Question], search_fn: SearchFn, ks: Sequence[int] = (1, 5), *,
             modes: Sequence[str] = MODES, mrr_depth: int = 10,
             progress: Callable[[str], None] | None = None) -> Report:
    """Run every question in every mode. `search_fn(question, mode, k)` returns hits
    (objects with `.document`, or Documents) best first; a hit counts when its
    `file` and `page` metadata match a gold page."""
    ks = tuple(sorted(set(ks)))
    depth = max(max(ks), mrr_depth)
    rows: list[Row] = []
    report = Report(ks=ks, rows=rows)
    for mode in modes:
        acc: dict[str, list[tuple[dict[int, float], float]]] = {}
        latencies: list[float] = []
        report.misses[mode] = []
        report.per_question[mode] = {}
        for q in questions:
            t0 = time.perf_counter()
            hits = search_fn(q.question, mode, depth)
            latencies.append((time.perf_counter() - t0) * 1000)
            pages = [_hit_page(h) for h in hits]
            scores = {k: hit_at_k(pages, q.gold, k) for k in ks}
            rr = reciprocal_rank(pages, q.gold, mrr_depth)
            report.per_question[mode][q.id] = round(1 / rr) if rr else None
            if not scores[ks[-1]]:
                report.misses[mode].append(q.id)
            for g in _groups(q):
                acc.setdefault(g, []).append((scores, rr))
        for g in sorted(acc, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g)):
            vals = acc[g]
            rows.append(Row(mode=mode, group=g, n=len(vals),
                            hits={k: sum(s[k] for s, _ in vals) / len(vals) for k in ks},
                            mrr=sum(rr for _, rr in vals) / len(vals)))
        report.latency_ms[mode] = {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                                   "max": max(latencies, default=math.nan)}
        if progress:
            row = report.get(mode, "all")
            progress(f"{mode}: " + ", ".join(f"hit@{k} {row.hits[k]:.3f}" for k in ks) if row else mode)
    return report


def format_table(report: Report) -> str:
    """A Markdown table: one line per (group, mode)."""
    head = ["group", "n", "mode", *[f"hit@{k}" for k in report.ks], "MRR@10"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    modes = list(dict.fromkeys(r.mode for r in report.rows))
    groups = list(dict.fromkeys(r.group for r in report.rows))
    for g in groups:
        for m in modes:
            r = report.get(m, g)
            if r is None:
                continue
            cells = [g, str(r.n), m, *[f"{r.hits[k]:.3f}" for k in report.ks], f"{r.mrr:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
    if report.latency_ms:
        lines.append("")
        lines.append("| mode | query p50 ms | p95 ms | max ms |")
        lines.append("|---|---|---|---|")
        for m, lat in report.latency_ms.items():
            lines.append(f"| {m} | {lat['p50']:.0f} | {lat['p95']:.0f} | {lat['max']:.0f} |")
    return "\n".join(lines)


def build_ingested_collection(pdf_paths: Iterable[str | Path], settings: Any, *, embeddings: Any,
                              data_dir: str | Path, log: Callable[[str], None] | None = None) -> Any:
    """Ingest every PDF through the app's own pipeline (agent.ingest: parse, OCR, chunk,
    embed, store) into a collection under `data_dir`; files it rejects are logged."""
    from agent.ingest.pipeline import ingest_file
    from agent.search.embeddings import embedding_model_id
    from agent.search.store import Collection

    settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    collection = Collection(Path(data_dir), "eval", embeddings, embedding_model_id(settings.embedding))
    for path in pdf_paths:
        result = ingest_file(Path(path), collection, embeddings, settings)
        if log:
            log(f"{result.status:9s} {result.file}: {result.pages} pages, {result.chunks} chunks, "
                f"{result.seconds:.1f}s {result.message}".rstrip())
    return collection


def run_eval_command(questions: str | Path, pdfs: str | Path, settings: Any, *, as_json: bool = False,
                     modes: Sequence[str] = MODES, out: Any = None) -> int:
    """`python -m agent eval QUESTIONS --pdfs DIR`: ingest DIR's PDFs with the app's
    pipeline into a temporary collection, evaluate every mode, print the table (or JSON)."""
    import tempfile

    from agent.search.embeddings import make_embeddings

    out = out or sys.stdout

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    emb: Any = make_embeddings(settings.embedding, ollama_host=settings.ollama_host,
                               timeout=settings.request_timeout, hosts=settings.hosts())
    qs = load_questions(questions)
    pdf_paths = sorted(Path(pdfs).glob("*.pdf"))
    with tempfile.TemporaryDirectory(prefix="agent-eval-") as tmp:
        t0 = time.perf_counter()
        collection = build_ingested_collection(pdf_paths, settings, embeddings=emb, data_dir=tmp, log=log)
        ingest_s = time.perf_counter() - t0
        from agent.search.retrieval import search

        def search_fn(question: str, mode: str, k: int) -> Sequence[Any]:
            return search(question, [collection], embeddings=emb, k=k, mode=mode)  # type: ignore[arg-type]

        report = evaluate(qs, search_fn, (1, 5, settings.retrieval_k), modes=modes, progress=log)
    if as_json:
        json.dump({"ingest_seconds": round(ingest_s, 1), "chunk_size": settings.chunk_size,
                   "chunk_overlap": settings.chunk_overlap,
                   "rows": [r.__dict__ for r in report.rows], "latency_ms": report.latency_ms,
                   "misses": report.misses}, out, indent=1, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(format_table(report) + "\n")
        out.write(f"\ningest {ingest_s:.0f}s for {len(pdf_paths)} PDFs; chunk_size={settings.chunk_size}, "
                  f"chunk_overlap={settings.chunk_overlap}, embedding={settings.embedding}\n")
    return 0
