"""Retrieval evaluation on a question set (e.g. /work/shared/devset).

For each question, search a collection holding ALL the set's PDFs (the realistic
setting) and check whether a gold page (`page` or any of `alt_pages`, of the gold
`file`) is among the pages of the top-k chunks. Reported per mode (vector, bm25,
hybrid), per language, per kind (text, table, manual, malformed, scanned =
needs_ocr) and for the long-manual questions per language.

How collections are built is passed in (`build_collections`), so the same harness runs
on the app's real ingest pipeline or on `build_memory_collection` (chunker +
LocalEmbeddings + FAISS in memory, text from pypdfium2), used until ingest exists.

Run:  python -m agent.evaluate --devset /work/shared/devset [--cache /tmp/rq/emb]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

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


# ---------------------------------------------------------------- in-memory collection

@dataclass
class ParsedPage:
    """Same shape as agent.parse.ParsedPage (number is 1-based)."""
    number: int
    text: str
    ocr: bool = False


def extract_pages(pdf_path: str | Path) -> list[ParsedPage]:
    """Text of each page with pypdfium2 (no OCR). Raises on unreadable/encrypted files."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            pages.append(ParsedPage(i + 1, textpage.get_text_range()))
            textpage.close()
            page.close()
        return pages
    finally:
        doc.close()


class CachedEmbeddings(Embeddings):
    """Wraps an Embeddings object with an on-disk cache keyed by text hash (for iterating
    on the evaluation; not used by the app)."""

    def __init__(self, inner: Any, cache_dir: str | Path, model_id: str) -> None:
        import numpy as np

        self.inner, self.np = inner, np
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / (hashlib.sha1(model_id.encode()).hexdigest()[:12] + ".npz")
        self.cache: dict[str, Any] = {}
        if self.path.exists():
            with np.load(self.path) as z:
                self.cache = {k: z[k] for k in z.files}
        self._dirty = False

    def _key(self, text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in self.cache}
        if todo:
            vectors = self.inner.embed_documents(list(todo.values()))
            for k, v in zip(todo, vectors):
                self.cache[k] = self.np.asarray(v, dtype=self.np.float32)
            self._dirty = True
            self.save()
        return [self.cache[k].tolist() for k in keys]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def save(self) -> None:
        if self._dirty:
            tmp = self.path.with_suffix(".tmp.npz")
            self.np.savez(tmp, **self.cache)
            tmp.replace(self.path)
            self._dirty = False


@dataclass
class MemoryCollection:
    """A SearchableCollection held in memory."""
    vectorstore: Any
    documents: list[Any]
    version: int = 1
    name: str = "eval"


def build_memory_collection(pdf_paths: Iterable[str | Path], *, chunk_size: int, chunk_overlap: int,
                            embeddings: Any, log: Callable[[str], None] | None = None) -> MemoryCollection:
    """Chunk every readable PDF (pypdfium2 text), embed, and index in an in-memory FAISS
    store (inner product over normalised vectors), the way agent.store does."""
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    from agent.ingest.chunking import chunk_pages, embedding_text

    docs = []
    for path in pdf_paths:
        path = Path(path)
        try:
            pages = extract_pages(path)
        except Exception as exc:  # broken/encrypted files are skipped, as ingest would reject them
            if log:
                log(f"skip {path.name}: {type(exc).__name__}: {exc}")
            continue
        doc_id = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
        docs.extend(chunk_pages(pages, file=path.name, doc_id=doc_id, chunk_size=chunk_size,
                                chunk_overlap=chunk_overlap))
    t0 = time.perf_counter()
    vectors = embeddings.embed_documents([embedding_text(d) for d in docs])
    if log:
        log(f"embedded {len(docs)} chunks in {time.perf_counter() - t0:.1f}s")
    store = FAISS.from_embeddings(
        [(d.page_content, v) for d, v in zip(docs, vectors)], embeddings,
        metadatas=[d.metadata for d in docs], ids=[d.metadata["chunk_id"] for d in docs],
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
    stored = [store.docstore.search(store.index_to_docstore_id[i]) for i in range(len(docs))]
    return MemoryCollection(vectorstore=store, documents=stored)


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
                     modes: Sequence[str] = MODES, cache: str | Path | None = None,
                     out: Any = None) -> int:
    """`python -m agent eval QUESTIONS --pdfs DIR`: ingest DIR's PDFs with the app's
    pipeline into a temporary collection, evaluate every mode, print the table (or JSON)."""
    import tempfile

    from agent.search.embeddings import embedding_model_id, make_embeddings

    out = out or sys.stdout

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    emb: Any = make_embeddings(settings.embedding, ollama_host=settings.ollama_host,
                               timeout=settings.request_timeout)
    if cache:
        emb = CachedEmbeddings(emb, cache, embedding_model_id(settings.embedding))
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


# ---------------------------------------------------------------- command line

def evaluate_devset(devset: str | Path, build_collections: Callable[[list[Path]], Sequence[Any]], *,
                    embeddings: Any, k_values: Sequence[int] = (1, 5), modes: Sequence[str] = MODES,
                    search_kwargs: dict[str, Any] | None = None,
                    log: Callable[[str], None] | None = None) -> Report:
    """Build collections from all the devset's PDFs with `build_collections`, then evaluate."""
    from agent.search.retrieval import search

    devset = Path(devset)
    questions = load_questions(devset / "questions.jsonl")
    pdfs = sorted((devset / "pdfs").glob("*.pdf"))
    collections = build_collections(pdfs)

    def search_fn(question: str, mode: str, k: int) -> Sequence[Any]:
        return search(question, collections, embeddings=embeddings, k=k, mode=mode,  # type: ignore[arg-type]
                      **(search_kwargs or {}))

    return evaluate(questions, search_fn, k_values, modes=modes, progress=log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devset", default="/work/shared/devset")
    parser.add_argument("--pipeline", choices=("ingest", "memory"), default="ingest",
                        help="ingest: the app's agent.ingest into a temporary store (default); "
                             "memory: pypdfium2 text + chunker + FAISS in memory")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--chunk-overlap", type=int, default=None)
    parser.add_argument("--no-ocr", action="store_true", help="ingest without OCR (faster)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--cache", default=None, help="directory for an embedding cache (speeds re-runs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--misses", action="store_true", help="(memory) list questions missed at the largest k")
    args = parser.parse_args(argv)

    from agent.config import Settings
    from agent.search.embeddings import LocalEmbeddings

    updates: dict[str, Any] = {"embedding": "local"}
    if args.chunk_size:
        updates["chunk_size"] = args.chunk_size
    if args.chunk_overlap is not None:
        updates["chunk_overlap"] = args.chunk_overlap
    if args.no_ocr:
        updates["ocr"] = False
    settings = Settings().model_copy(update=updates)
    modes = [m for m in args.modes.split(",") if m]
    devset = Path(args.devset)
    if args.pipeline == "ingest":
        return run_eval_command(devset / "questions.jsonl", devset / "pdfs", settings, as_json=args.json,
                                modes=modes, cache=args.cache)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    emb: Any = LocalEmbeddings()
    if args.cache:
        emb = CachedEmbeddings(emb, args.cache, LocalEmbeddings.model_id)
    t0 = time.perf_counter()
    report = evaluate_devset(
        devset,
        lambda pdfs: [build_memory_collection(pdfs, chunk_size=settings.chunk_size,
                                              chunk_overlap=settings.chunk_overlap, embeddings=emb, log=log)],
        embeddings=emb, modes=modes, log=log)
    log(f"total {time.perf_counter() - t0:.0f}s (chunk_size={settings.chunk_size}, "
        f"chunk_overlap={settings.chunk_overlap})")
    print(format_table(report))
    if args.misses:
        for mode, ids in report.misses.items():
            print(f"\nmissed at k={report.ks[-1]} ({mode}): {' '.join(ids)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
