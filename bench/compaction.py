"""Background compaction at scale (issue 19.5): a save that needs a whole compaction, at 10k (inline,
the reference), 100k and 1M chunks, and what searches, adds and removals see while it runs.

    python -m bench.compaction [--quick] [--sizes 10000,100000,1000000] [--searches N]

Each size is written by bench.scale's build worker (bench/_scale_data.py: files of 900 chunks,
random unit vectors of dimension 512), then measured in a fresh process (`--worker`, nice 10, one
BLAS thread, as bench.scale): load + keyword index; one add that replaces (drops) just under 25% of
the rows, spread over the collection (setup: the deleted share a collection reaches over time);
search latency (hybrid, k=5) before; then the removal of one more file, which carries the deleted
share over `store.MAX_DELETED_SHARE` and so needs a whole compaction (what the user waits for: at
10k the whole save itself, inline). While the compaction runs: searches, one add and one removal
(timed; the removal is of a file the compaction is rewriting), RSS and disk sampled every 0.1 s.
After it: the added file is there, the removed ones are not, in the process and in a fresh load
(another process: load + keyword index timed).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agent.evaluate import percentile
from bench._scale_data import CHUNKS_PER_PAGE, DIM, PAGES_PER_FILE, Synthetic, entry
from bench.common import Goal, Run, clean_env, load_average, markdown_table, parser, ratio, run_worker, worker_output
from bench.scale import worker as scale_worker
from tests.support import ROOT

NAME = "compaction"
MODEL = "bench-scale"  # the build worker's embedding model name
PER_FILE = PAGES_PER_FILE * CHUNKS_PER_PAGE
ADDED = 20_000_000  # file numbers drawn for the files this bench adds (the collection's are 0, 1, ...)
SAMPLE_S = 0.1
MAX_DURING_S = 1800.0  # searches during a compaction stop after this long (a bound, never reached so far)
SEARCHES = 40
MEMORY_MB_PER_CHUNK = 0.014  # peak RSS of a measure per chunk, with room (bench/README.md 13b)


class QueryVectors:
    """Embeddings of queries only: a unit vector drawn from the query's CRC (the collection's are random too)."""

    def embed_query(self, text: str) -> list[float]:
        v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIM)
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def queries(synthetic: Synthetic, count: int) -> list[str]:
    """Two or three words of Zipf ranks 20-5000, one query in five two Chinese characters."""
    rng = np.random.default_rng(3)
    out = []
    for q in range(count):
        if q % 5 == 4:
            out.append("".join(chr(0x4E00 + int(c)) for c in rng.integers(0, 300, 2)))
        else:
            out.append(" ".join(synthetic.words[int(r)] for r in rng.integers(20, 5000, rng.integers(2, 4))))
    return out


class Periodic:
    """Calls `tick` in a thread every `period` seconds from entering the `with` block to leaving it."""

    period = SAMPLE_S

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Periodic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.period):
                return

    def tick(self) -> None:
        raise NotImplementedError


class Sampler(Periodic):
    """Peak RSS of this process and peak disk use of a folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder, self.rss_mb, self.disk_mb = folder, 0.0, 0.0

    def tick(self) -> None:
        self.rss_mb = max(self.rss_mb, rss_mb())
        self.disk_mb = max(self.disk_mb, disk_mb(self.folder))


class Stacks(Periodic):
    """Where a thread spends its time: its innermost frame in agent/, sampled every 10 ms."""

    period = 0.01

    def __init__(self, ident: int | None) -> None:
        super().__init__()
        self.ident, self.counts = ident, Counter()

    def tick(self) -> None:
        frame = sys._current_frames().get(self.ident)
        while frame is not None and f"{os.sep}agent{os.sep}" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None:
            self.counts[f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}:{frame.f_lineno}"] += 1

    def top(self, count: int = 8) -> list[tuple[str, float]]:
        """The most sampled lines and their share of the samples."""
        total = sum(self.counts.values()) or 1
        return [(line, n / total) for line, n in self.counts.most_common(count)]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(folder: Path) -> float:
    """Disk blocks used under `folder` (files vanish while a compaction moves them: skipped)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total / 1e6


def timed(fn: Any, *args: Any, **kw: Any) -> float:
    t0 = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t0


def latencies(collection: Any, texts: list[str], until: threading.Event | None = None) -> list[float]:
    """Seconds per search over `texts` (cycled while `until` is not set, when given)."""
    from agent.search.retrieval import search

    out: list[float] = []
    t_end = time.perf_counter() + MAX_DURING_S
    while len(out) < len(texts) or (until is not None and not until.is_set() and time.perf_counter() < t_end):
        if until is not None and until.is_set():
            break
        out.append(timed(search, texts[len(out) % len(texts)], [collection], embeddings=QueryVectors(), k=5))
    return out


def summary(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "p50_ms": 1000 * percentile(values, 50) if values else None,
            "p95_ms": 1000 * percentile(values, 95) if values else None}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Setup, searches before, the triggering removal, then searches, an add and a removal during
    the compaction, and checks after it (see the module docstring)."""
    from agent.search.keyword_index import collection_index
    from agent.search.store import MAX_DELETED_SHARE, Collection

    os.nice(10)
    synthetic, out = Synthetic(), {"n": spec["n"]}
    folder = Path(spec["data_dir"]) / "collections" / "docs"
    texts = queries(synthetic, spec["searches"])
    t0 = time.perf_counter()
    collection = Collection(Path(spec["data_dir"]), "docs", QueryVectors(), MODEL)
    out["load_s"] = time.perf_counter() - t0
    out["keyword_index_s"] = timed(collection_index, collection)
    files = -(-spec["n"] // PER_FILE)
    # Setup: one add replacing k files, leaving the deleted share just under MAX_DELETED_SHARE.
    k = int(MAX_DELETED_SHARE * (spec["n"] + PER_FILE) // PER_FILE)
    dropped = {f"{f:064x}" for f in np.linspace(0, files - 2, k).round().astype(int).tolist()}
    setup = entry(synthetic.file(ADDED, PER_FILE, "setup.pdf", "a" * 64))
    with collection.writing():
        out["setup_add_s"] = timed(collection.add, *setup, pdf=None, replacing=sorted(dropped))
    out["setup_dropped_files"] = len(dropped)
    out["setup_compaction_started"] = not collection.compaction_finished(0)
    out["keyword_index_setup_s"] = timed(collection_index, collection)
    latencies(collection, texts[:2])  # warm-up
    before = latencies(collection, texts)
    out["disk_before_mb"] = disk_mb(folder)
    out["rss_before_mb"] = rss_mb()
    trigger, removed_during = [f"{f:064x}" for f in range(files - 1) if f"{f:064x}" not in dropped][-2:]
    during_add = entry(synthetic.file(ADDED + 1, PER_FILE, "during.pdf", "b" * 64))
    with Sampler(folder) as sampler:
        with collection.writing(), Stacks(threading.get_ident()) as stacks:
            out["trigger_remove_s"] = timed(collection.remove, trigger)
        out["trigger_stacks"] = stacks.top()
        out["compaction_started"] = not collection.compaction_finished(0)
        thread = collection._compaction.thread if out["compaction_started"] else None
        with Stacks(thread.ident if thread else None) as compacting:
            during = during_compaction(collection, texts, during_add, removed_during, out)
        out["compaction_stacks"] = compacting.top()
    out["rss_peak_during_mb"], out["disk_peak_mb"] = sampler.rss_mb, sampler.disk_mb
    out["searches_before"], out["searches_during"] = summary(before), summary(during)
    out["segments_after"] = len(collection.snapshot().segments)
    out["keyword_index_after_s"] = timed(collection_index, collection)
    out["searches_after"] = summary(latencies(collection, texts))
    out["disk_after_mb"] = disk_mb(folder)
    out["kept"] = kept(collection, "b" * 64, [trigger, removed_during])
    out["removed"] = [trigger, removed_during]
    out["live_rows"] = len(collection.documents)
    return out


def during_compaction(collection: Any, texts: list[str], added: Any, removed: str, out: dict[str, Any]) -> list[float]:
    """Search latencies while the compaction started by the last save runs, with one add and one
    removal made meanwhile (after it, when it ran inline); its duration in out["compaction_s"]."""
    from agent.search.keyword_index import collection_index

    t0, done, finished_at = time.perf_counter(), threading.Event(), [0.0]

    def wait() -> None:
        collection.compaction_finished()
        finished_at[0] = time.perf_counter()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    out["keyword_index_after_trigger_s"] = timed(collection_index, collection)
    during = latencies(collection, texts[:3]) if out["compaction_started"] else []
    when = "during" if not done.is_set() else "after"  # after: inline, below store.BACKGROUND_MIN_ROWS
    with collection.writing():
        out[f"add_{when}_s"] = timed(collection.add, *added, pdf=None)
    with collection.writing():
        out[f"remove_{when}_s"] = timed(collection.remove, removed)
    out["writes_during_compaction"] = when == "during" and not done.is_set()
    if when == "during":
        out["keyword_index_after_writes_s"] = timed(collection_index, collection)
        during += latencies(collection, texts, done)
    done.wait()
    out["compaction_s"] = finished_at[0] - t0 if out["compaction_started"] else 0.0
    return during


def kept(collection: Any, added: str, removed: list[str]) -> bool:
    """Whether `added` is in the collection with all its chunks, and none of `removed` is."""
    infos = collection.infos
    rows = collection.documents.rows_with("doc_id", {added})
    gone = collection.documents.rows_with("doc_id", set(removed))
    return added in infos and len(rows) == PER_FILE and not len(gone) and not any(r in infos for r in removed)


def reload(spec: dict[str, Any]) -> dict[str, Any]:
    """A fresh process: load + keyword index of the compacted collection, and the same checks."""
    from agent.search.keyword_index import collection_index
    from agent.search.store import Collection

    os.nice(10)
    start = rss_mb()
    t0 = time.perf_counter()
    collection = Collection(Path(spec["data_dir"]), "docs", QueryVectors(), MODEL)
    load_s = time.perf_counter() - t0
    index_s = timed(collection_index, collection)
    return {"load_s": load_s, "keyword_index_s": index_s, "memory_mb": rss_mb() - start,
            "segments": len(collection.snapshot().segments), "live_rows": len(collection.documents),
            "kept": kept(collection, "b" * 64, spec["removed"])}


def wait_for_memory(run: Run, need_mb: float, timeout_s: float = 900) -> None:
    """Wait (bounded) until the machine has `need_mb` available: other sessions run 1M benches too."""
    t_end = time.perf_counter() + timeout_s
    while time.perf_counter() < t_end:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(meminfo["MemAvailable"].split()[0]) / 1024
        if available >= need_mb:
            return
        run.log(f"waiting for {need_mb:.0f} MB of memory ({available:.0f} MB available)")
        time.sleep(20)


def measure_size(run: Run, n: int, work: Path, searches: int) -> dict[str, Any]:
    data = work / f"c-{n}"
    wait_for_memory(run, MEMORY_MB_PER_CHUNK * n)
    run.log(f"{n:,} chunks: writing")
    built = scale_worker(ROOT, {"step": "build", "n": n, "data_dir": str(data)}, timeout=3600)
    env = clean_env(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    wait_for_memory(run, MEMORY_MB_PER_CHUNK * n)
    run.log(f"{n:,} chunks: written in {built['write_s']:.0f} s; measuring (load {load_average()})")
    row = run_worker("bench.compaction", {"step": "measure", "n": n, "data_dir": str(data), "searches": searches},
                     env=env) | {"raw_mb": built["raw_mb"]}
    run.log(f"{n:,} chunks: compaction {row['compaction_s']:.1f} s; fresh load (load {load_average()})")
    row["fresh"] = run_worker("bench.compaction", {"step": "reload", "data_dir": str(data),
                                                   "removed": row["removed"]}, env=env)
    shutil.rmtree(data, ignore_errors=True)
    return row


def ms(summary_: dict[str, Any]) -> str:
    return "-" if not summary_["count"] else f"{summary_['p50_ms']:.0f} / {summary_['p95_ms']:.0f} ({summary_['count']})"


def report(run: Run, rows: list[dict[str, Any]]) -> None:
    run.table("Whole compaction triggered by a removal (deleted share over 25%), same run", markdown_table(
        ["chunks", "triggering removal s", "compaction s (background)", "keyword index after trigger s",
         "search p50 / p95 ms (count): before", "during", "after", "add / remove during s",
         "kept after swap", "RSS before / peak during MB", "disk before / peak / after MB",
         "fresh load + keyword index s"],
        [[f"{r['n']:,}", r["trigger_remove_s"], r["compaction_s"] if r["compaction_started"] else "inline",
          r["keyword_index_after_trigger_s"], ms(r["searches_before"]), ms(r["searches_during"]),
          ms(r["searches_after"]),
          f"{r['add_during_s']:.2f} / {r['remove_during_s']:.2f}" if "add_during_s" in r
          else f"(after) {r['add_after_s']:.2f} / {r['remove_after_s']:.2f}",
          "yes" if r["kept"] and r["fresh"]["kept"] else "NO",
          f"{r['rss_before_mb']:.0f} / {r['rss_peak_during_mb']:.0f}",
          f"{r['disk_before_mb']:.0f} / {r['disk_peak_mb']:.0f} / {r['disk_after_mb']:.0f}",
          f"{r['fresh']['load_s']:.2f} + {r['fresh']['keyword_index_s']:.3f}"] for r in rows]))
    big = rows[-1]
    run.table(f"Where the time goes at {big['n']:,} (innermost agent/ line, share of 10 ms samples)", markdown_table(
        ["what", "line", "share"],
        [[what, line, f"{share:.0%}"] for what, key in (("triggering removal", "trigger_stacks"),
                                                         ("background compaction", "compaction_stacks"))
         for line, share in big[key]]))
    small = rows[0]
    run.goals = [Goal(f"triggering save at {big['n']:,} / at {small['n']:,}",
                      ratio(big["trigger_remove_s"], small["trigger_remove_s"]), "<=", 3.0)]
    for r in rows:
        if r["searches_during"]["count"]:
            run.goals.append(Goal(f"search p95 during / before compaction at {r['n']:,}",
                                  ratio(r["searches_during"]["p95_ms"], r["searches_before"]["p95_ms"]), "<=", 2.0))
        run.goals.append(Goal(f"add + removal during compaction kept at {r['n']:,}",
                              float(r["kept"] and r["fresh"]["kept"]), ">=", 1.0))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="comma-separated chunk counts (default 10000,100000,1000000)")
    p.add_argument("--searches", type=int, default=SEARCHES, help="searches timed before and after")
    args = p.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        worker_output(measure(spec) if spec["step"] == "measure" else reload(spec))
        return 0
    sizes = [int(s) for s in (args.sizes or ("10000,120000" if args.quick else "10000,100000,1000000")).split(",")]
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    run.params = {"sizes": sizes, "dimension": DIM, "file_chunks": PER_FILE, "searches": args.searches, "k": 5}
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp:
        rows = [measure_size(run, n, Path(tmp), args.searches) for n in sizes]
    run.results = {"rows": rows}
    report(run, rows)
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
