"""Ingestion throughput: our pipeline vs LangChain's RAG-tutorial pipeline, same embedder.

Pipelines, side by side in one run, each in its own subprocess (so peak memory is its own;
the embedding model is loaded and warmed up before timing starts, in every worker):

- ours: `agent.ingest.ingest_file` end to end into a fresh data dir (PDFium parse with the
  garbled-text/OCR checks, page-bounded chunking, LocalEmbeddings, FAISS generation
  written to disk with its chunk store and a copy of the PDF);
- floor: the pure embedding time of exactly our chunks (`embed_chunks`, same process,
  alternately before and after ours): what no pipeline using this embedder can beat;
- baseline: LangChain's RAG tutorial: `PyPDFLoader` -> `RecursiveCharacterTextSplitter
  (chunk_size=1000, chunk_overlap=200)` -> `FAISS.from_documents` (then `add_documents`
  for further files) with the same LocalEmbeddings; nothing written to disk.

Also: re-ingesting an unchanged file (in-process `ingest_file`, and a whole
`python -m agent ingest FILE` process), and peak RSS (VmHWM) per worker.

    python -m bench.ingest            # handful of devset PDFs + gnuplot.pdf (311 pages), 3 rounds: ~15 min
    python -m bench.ingest --quick    # three small PDFs, one round
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Goal,
    Run,
    clean_env,
    markdown_table,
    median,
    overhead_pct,
    parser,
    peak_rss_mb,
    rate,
    ratio,
    run_worker,
    speedup,
    worker_output,
)
from tests.support import DEVSET_PDFS, ROOT, rss_mb

NAME = "ingest"
HANDFUL = ["squad_Apollo_program.pdf", "squad_Steam_engine.pdf", "cmrc2018_wiki_zh_sample.pdf", "health.pdf",
           "zen_of_python_corrupted.pdf", "asymptote-manual-zh-cn.pdf"]
LONG = ["gnuplot.pdf"]
QUICK = ["squad_Geology.pdf", "cmrc2018_DEV_1011.pdf", "health.pdf"]
UNCHANGED_REPEATS = 5


# ------------------------------------------------------------------ workers (subprocesses)

def _warm_embeddings() -> tuple[Any, float]:
    from agent.search.embeddings import LocalEmbeddings

    emb = LocalEmbeddings()
    t0 = time.perf_counter()
    emb.embed_query("warm-up: load the model before timing")
    return emb, time.perf_counter() - t0


def worker_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from agent.config import Settings
    from agent.ingest.chunking import chunk_pages, embedding_text
    from agent.ingest.parse import parse_pdf
    from agent.ingest.pipeline import embed_chunks, ingest_file
    from agent.search.embeddings import LOCAL_MODEL_ID
    from agent.search.store import Collection

    emb, load_s = _warm_embeddings()
    ready_mb = rss_mb()
    samples = []
    for rep in range(spec["repeats"]):
        data_dir = Path(spec["workdir"]) / f"ours-{rep}"
        shutil.rmtree(data_dir, ignore_errors=True)
        settings = Settings(data_dir=data_dir)  # built-in defaults, whatever the environment says
        collection = Collection(data_dir, "default", emb, LOCAL_MODEL_ID)
        floor_first = (spec.get("round", 0) + rep) % 2 == 1  # alternate which of ours/floor runs first
        files = []
        for name in spec["files"]:
            path = DEVSET_PDFS / name
            # the floor: embedding exactly the chunks ours makes (same parse and chunk settings)
            parsed = parse_pdf(path, max_bytes=settings.max_upload_mb << 20, max_pages=settings.max_pages,
                               ocr=settings.ocr, max_ocr_pages=settings.max_ocr_pages)
            floor_chunks = chunk_pages(parsed.pages, file=name, doc_id="floor", chunk_size=settings.chunk_size,
                                       chunk_overlap=settings.chunk_overlap)

            def floor(chunks: list[Any] = floor_chunks) -> float:
                f0 = time.perf_counter()
                embed_chunks(chunks, emb)
                return time.perf_counter() - f0

            floor_s = floor() if floor_first else None
            stages: dict[str, float] = {}

            def progress(stage: str, done: int, total: int, stages: dict[str, float] = stages) -> None:
                stages.setdefault(stage, time.perf_counter())

            t0 = time.perf_counter()
            result = ingest_file(path, collection, emb, settings, progress=progress)
            t1 = time.perf_counter()
            row: dict[str, Any] = {"file": name, "status": result.status, "pages": result.pages,
                                   "chunks": result.chunks, "seconds": t1 - t0, "message": result.message,
                                   "ocr_pages": len(result.ocr_pages), "floor_first": floor_first}
            if result.ok:
                embed_at, index_at = stages.get("embed", t1), stages.get("index", t1)
                row["stages"] = {"parse_chunk": embed_at - t0, "embed": index_at - embed_at, "index": t1 - index_at}
                chunks = [d for d in collection.documents if d.metadata.get("doc_id") == result.doc_id]
                assert [embedding_text(d) for d in chunks] == [embedding_text(d) for d in floor_chunks], \
                    "the floor's chunks differ from the ingested ones"
                row["embed_chars"] = sum(len(embedding_text(d)) for d in chunks)
                row["floor_seconds"] = floor_s if floor_s is not None else floor()
                again = []
                for _ in range(UNCHANGED_REPEATS):
                    u0 = time.perf_counter()
                    status = ingest_file(path, collection, emb, settings).status
                    again.append(time.perf_counter() - u0)
                    assert status == "unchanged", status
                row["unchanged_seconds"] = again
            files.append(row)
        samples.append({"files": files, "data_dir": str(data_dir)})
    return {"pipeline": "ours", "model_load_s": load_s, "ready_rss_mb": ready_mb, "peak_rss_mb": peak_rss_mb(),
            "samples": samples}


def worker_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    emb, load_s = _warm_embeddings()
    ready_mb = rss_mb()
    samples = []
    for _ in range(spec["repeats"]):
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        store = None
        files = []
        for name in spec["files"]:
            t0 = time.perf_counter()
            try:
                pages = PyPDFLoader(str(DEVSET_PDFS / name)).load()
                t1 = time.perf_counter()
                splits = splitter.split_documents(pages)
                t2 = time.perf_counter()
                if splits:
                    if store is None:
                        store = FAISS.from_documents(splits, emb)
                    else:
                        store.add_documents(splits)
                t3 = time.perf_counter()
            except Exception as exc:  # noqa: BLE001 - a file the tutorial pipeline cannot read
                files.append({"file": name, "status": "failed", "message": f"{type(exc).__name__}: {exc}"[:300],
                              "seconds": time.perf_counter() - t0, "pages": 0, "chunks": 0})
                continue
            files.append({"file": name, "status": "added", "pages": len(pages), "chunks": len(splits),
                          "seconds": t3 - t0, "embed_chars": sum(len(d.page_content) for d in splits),
                          "stages": {"load": t1 - t0, "split": t2 - t1, "embed_index": t3 - t2}})
        samples.append({"files": files})
        del store
    return {"pipeline": "baseline", "model_load_s": load_s, "ready_rss_mb": ready_mb, "peak_rss_mb": peak_rss_mb(),
            "samples": samples}


# ------------------------------------------------------------------ aggregation

def _totals(sample: dict[str, Any], key: str = "seconds") -> dict[str, float]:
    ok = [f for f in sample["files"] if f["status"] != "failed"]
    out = {"seconds": sum(f.get(key, 0.0) for f in ok), "pages": sum(f["pages"] for f in ok),
           "chunks": sum(f["chunks"] for f in ok), "embed_chars": sum(f.get("embed_chars", 0) for f in ok),
           "failed": [f["file"] for f in sample["files"] if f["status"] == "failed"]}
    stages: dict[str, float] = {}
    for f in ok:
        for k, v in (f.get("stages") or {}).items():
            stages[k] = stages.get(k, 0.0) + v
    out["stages"] = stages
    return out


def summarize_pipeline(workers: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    """Medians over every sample of every worker (round) of one pipeline on one file set."""
    totals = [_totals(s, key) for w in workers for s in w["samples"]]
    first = totals[0]
    seconds = median(t["seconds"] for t in totals)
    stage_names = sorted({k for t in totals for k in t["stages"]})
    return {
        "samples_s": [round(t["seconds"], 3) for t in totals], "seconds": seconds,
        "pages": first["pages"], "chunks": first["chunks"], "embed_chars": first["embed_chars"],
        "failed": first["failed"],
        "pages_per_s": rate(first["pages"], seconds), "chunks_per_s": rate(first["chunks"], seconds),
        "ms_per_page": ratio(seconds * 1000, first["pages"]),
        "kchars_per_s": rate(first["embed_chars"] / 1000, seconds),
        "stages_s": {k: median(t["stages"].get(k, 0.0) for t in totals) for k in stage_names},
        "peak_rss_mb": max(w["peak_rss_mb"] for w in workers),
        "ready_rss_mb": median(w["ready_rss_mb"] for w in workers),
        "model_load_s": median(w["model_load_s"] for w in workers),
    }


def cli_reingest_seconds(data_dir: Path, pdf: Path, repeats: int, env: dict[str, str]) -> list[float]:
    """Wall time of `python -m agent ingest FILE` for a file already in the collection."""
    env = {**env, "AGENT_DATA_DIR": str(data_dir), "AGENT_EMBEDDING": "local"}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess_run([sys.executable, "-m", "agent", "ingest", str(pdf)], env)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0 or "UNCHANGED" not in proc.stdout:
            raise RuntimeError(f"re-ingest via CLI did not report UNCHANGED: {proc.stdout} {proc.stderr[-500:]}")
    return times


def subprocess_run(cmd: list[str], env: dict[str, str]):
    import subprocess

    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


# ------------------------------------------------------------------ one file set

def measure_set(run: Run, tmp: str, key: str, files: list[str], rounds: int, repeats: int,
                env: dict[str, str]) -> dict[str, Any]:
    """Both pipelines on one file set, `rounds` interleaved worker processes each."""
    workers: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
    for r in range(rounds):
        for pipeline in ("ours", "baseline"):
            run.log(f"{key}: {pipeline} round {r + 1}/{rounds} ({len(files)} files)")
            spec = {"pipeline": pipeline, "files": files, "repeats": repeats, "round": r,
                    "workdir": str(Path(tmp) / f"{len(run.results)}-{pipeline}-{r}")}
            workers[pipeline].append(run_worker("bench.ingest", spec, env=env))
            if pipeline == "ours" and r < rounds - 1:  # keep only the last round's data dir
                shutil.rmtree(spec["workdir"], ignore_errors=True)
    ours = summarize_pipeline(workers["ours"])
    floor = summarize_pipeline(workers["ours"], key="floor_seconds")
    base = summarize_pipeline(workers["baseline"])
    unchanged = [t for w in workers["ours"] for s in w["samples"] for f in s["files"]
                 for t in f.get("unchanged_seconds", [])]
    biggest = max(files, key=lambda n: (DEVSET_PDFS / n).stat().st_size)
    last_dir = Path(workers["ours"][-1]["samples"][-1]["data_dir"])
    run.log(f"{key}: CLI re-ingest of {biggest}")
    cli = cli_reingest_seconds(last_dir, DEVSET_PDFS / biggest, 3, env)
    shutil.rmtree(last_dir, ignore_errors=True)
    per_file_unchanged = {f["file"]: median(f.get("unchanged_seconds", []))
                          for f in workers["ours"][-1]["samples"][-1]["files"]}
    if base["failed"]:
        run.log(f"baseline failed on {base['failed']}")
    return {"files": files, "ours": ours, "floor": floor, "baseline": base,
            "speedup_vs_baseline": speedup(base["seconds"], ours["seconds"]),
            "overhead_vs_floor_pct": overhead_pct(ours["seconds"], floor["seconds"]),
            "unchanged_in_process_s": {"median": median(unchanged), "max": max(unchanged, default=None),
                                       "per_file_median": per_file_unchanged},
            "unchanged_cli": {"file": biggest, "median": median(cli), "samples": cli},
            "per_file": {"ours": workers["ours"][-1]["samples"][-1]["files"],
                         "baseline": workers["baseline"][-1]["samples"][-1]["files"]}}


def add_rows(key: str, files: list[str], result: dict[str, Any], table_rows: list, stage_rows: list,
             again_rows: list) -> None:
    ours, base, floor = result["ours"], result["baseline"], result["floor"]
    label = f"{key} ({len(files)} PDFs)"
    for pipe, s, vs_base, vs_floor in (
            ("ours", ours, result["speedup_vs_baseline"], result["overhead_vs_floor_pct"]),
            ("baseline (LangChain tutorial)", base, 1.0, overhead_pct(base["seconds"], floor["seconds"])),
            ("floor: embed our chunks only", floor, speedup(base["seconds"], floor["seconds"]), 0.0)):
        is_floor = pipe.startswith("floor")
        table_rows.append([label, ours["pages"], pipe, s["chunks"], round(s["embed_chars"] / 1000),
                           s["seconds"], s["pages_per_s"], s["chunks_per_s"], s["ms_per_page"],
                           f"{vs_base:.2f}x", f"{vs_floor:+.0f}%",
                           "–" if is_floor else round(s["peak_rss_mb"]),
                           "–" if is_floor else round(s["peak_rss_mb"] - s["ready_rss_mb"])])
    stage_rows.append([label, "ours", ", ".join(f"{k} {v:.1f}" for k, v in ours["stages_s"].items()),
                       ours["model_load_s"]])
    stage_rows.append([label, "baseline", ", ".join(f"{k} {v:.1f}" for k, v in base["stages_s"].items()),
                       base["model_load_s"]])
    again_rows.append([label, result["unchanged_in_process_s"]["median"] * 1000,
                       (result["unchanged_in_process_s"]["max"] or 0) * 1000, result["unchanged_cli"]["file"],
                       result["unchanged_cli"]["median"]])


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None,
                   help="worker processes per pipeline and file set, interleaved (default 3; quick 1)")
    p.add_argument("--sets", default=None, help="file sets to run: handful,gnuplot (default both; quick: quick)")
    p.add_argument("--blas", default=None,
                   help="comma-separated OpenBLAS thread settings to compare: 'default' (as shipped) and/or "
                        "numbers, e.g. 'default,1' (default: 'default,1'; quick: 'default')")
    args = p.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        worker_output((worker_ours if spec["pipeline"] == "ours" else worker_baseline)(spec))
        return 0

    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    rounds = args.rounds or (1 if args.quick else 3)
    repeats = args.repeats or (2 if args.quick else 1)
    known = {"quick": QUICK, "handful": HANDFUL, "gnuplot": LONG}
    names = args.sets.split(",") if args.sets else (["quick"] if args.quick else ["handful", "gnuplot"])
    sets = {n: known[n] for n in names}
    run.params = {"rounds": rounds, "repeats_per_round": repeats, "sets": sets,
                  "ours_settings": "defaults (chunk_size 800, overlap 120, OCR on, embedding local)",
                  "baseline": "PyPDFLoader + RecursiveCharacterTextSplitter(1000, 200) + FAISS.from_documents",
                  "unchanged_repeats": UNCHANGED_REPEATS}
    blas = [b.strip() for b in (args.blas or ("default" if args.quick else "default,1")).split(",") if b.strip()]
    run.params["blas_threads"] = blas
    table_rows, stage_rows, again_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for set_name, files in sets.items():
            for threads in blas:
                key = set_name if threads == "default" else f"{set_name}, BLAS {threads} thread(s)"
                env = clean_env() if threads == "default" else clean_env(OPENBLAS_NUM_THREADS=threads)
                result = measure_set(run, tmp, key, files, rounds, repeats, env)
                run.results[key] = result
                add_rows(key, files, result, table_rows, stage_rows, again_rows)

    run.table("Ingestion throughput (medians; time = parse + chunk + embed + index)", markdown_table(
        ["file set", "pages", "pipeline", "chunks", "k chars embedded", "s", "pages/s", "chunks/s", "ms/page",
         "speed vs baseline", "time vs floor", "peak RSS MB", "Δ RSS over warm model MB"], table_rows,
        align="lrlrrrrrrrrrr"))
    run.table("Where the time goes (medians, seconds; model load is before timing)", markdown_table(
        ["file set", "pipeline", "stages (s)", "model load s"], stage_rows, align="lllr"))
    run.table("Re-ingesting an unchanged file", markdown_table(
        ["file set", "in-process ingest_file ms (median)", "max ms", "CLI file", "`python -m agent ingest` s"],
        again_rows, align="lrrlr"))
    key = "quick" if args.quick else ("gnuplot" if "gnuplot" in run.results else "handful")
    key = key if key in run.results else next(iter(run.results))
    r = run.results[key]
    run.goals += [
        Goal(f"ours vs LangChain tutorial pipeline ({key})", r["speedup_vs_baseline"], ">=", 1.5, "x",
             f"ours {r['ours']['chunks']} chunks / {r['ours']['embed_chars'] // 1000}k chars embedded, "
             f"baseline {r['baseline']['chunks']} / {r['baseline']['embed_chars'] // 1000}k"),
        Goal(f"ours within 15% of the embedding floor ({key})", r["overhead_vs_floor_pct"], "<=", 15.0, "%"),
        Goal("re-ingest unchanged file, in process (all sets)",
             max(v["unchanged_in_process_s"]["max"] or 0 for v in run.results.values()), "<", 1.0, " s",
             "worst of every sample"),
        Goal(f"re-ingest unchanged file, whole CLI process ({r['unchanged_cli']['file']})",
             r["unchanged_cli"]["median"], "<", 1.0, " s", "includes Python start-up and imports"),
    ]
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
