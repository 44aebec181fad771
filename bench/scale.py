"""Big collections: memory, load + keyword index, add and remove one 900-chunk file (and one from the middle), at
10k / 100k / 1M chunks, this branch's columnar store against the code before it in the same run.

    python -m bench.scale [--quick] [--sizes 10000,100000,1000000] [--baseline REV] [--baseline-max N]

Each size is written once with this branch's store (bench/_scale_data.py: synthetic texts,
Zipf-distributed words, one chunk in five Chinese, 400-800 characters; random unit vectors of
dimension 512; term counts counted from the drawn ids, checked against the tokenizer on a
sample), then copied as the baseline reads it (format 3 when it has segments, else format 1: chunks
as JSON lines, same index and keyword counts). The baseline (default BASELINE: main before issue 19.4-19.5 was merged, the
code the issue's figures describe) runs only up to --baseline-max chunks: at 1M it needs
~11 GB (the issue's own figures stand for it). Each measurement runs in a fresh process with
PYTHONPATH on the tree measured (the baseline checked out into a temp dir with `git archive`).
Memory is RSS growth over the process's start (imports), against the raw size of the vectors +
chunk texts (UTF-8).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Goal, Run, markdown_table, parser, ratio
from tests.support import ROOT

NAME = "scale"
WORKER = ROOT / "bench" / "_scale_worker.py"
MARK = "BENCH-RESULT "
BASELINE = "ef9a7ae"  # main just before the merge of the columnar store (74ab8bc)
#: issue 19's figures at 1M chunks for the code before it ("today"), shown when the baseline is not run there
ISSUE_1M = {"n": 1_000_000, "code": "before (issue 19)", "memory_mb": 10_700, "load_s": 42.0, "keyword_index_s": 64.0,
            "add_s": 51.0, "remove_s": 92.0}
SERIES = 10  # files added one after another after the add/remove measure (this branch only): the amortised cost


def worker(tree: Path, spec: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    proc = subprocess.run(["nice", "-n", "10", sys.executable, str(WORKER), json.dumps(spec)], cwd=tree,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
                               "OPENBLAS_NUM_THREADS": "1", "HOME": str(tree)},
                          capture_output=True, text=True, timeout=timeout, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"worker failed (exit {proc.returncode}): {proc.stderr[-3000:]}")


def as_format_1(src: Path, dst: Path) -> None:
    """The collection at `src` as main writes it: chunks as JSON lines, manifest format 1."""
    from agent.search.chunk_table import ChunkTable

    shutil.copytree(src, dst)
    folder = dst / "collections" / "docs"
    manifest = json.loads((folder / "manifest.json").read_text())
    gen = manifest["generation"]
    table = ChunkTable.load(folder / f"chunks-{gen}.npy", folder / f"chunk-offsets-{gen}.npy")
    with (folder / f"chunks-{gen}.jsonl").open("w", encoding="utf-8") as out:
        for d in table:
            out.write(json.dumps({"id": d.id, "text": d.page_content, "metadata": d.metadata}, ensure_ascii=False))
            out.write("\n")
    del table
    (folder / f"chunks-{gen}.npy").unlink()
    (folder / f"chunk-offsets-{gen}.npy").unlink()
    del manifest["segments"]  # one, written by `gen` (a fresh collection)
    (folder / "manifest.json").write_text(json.dumps(manifest | {"format": 1}))


def measure_size(run: Run, n: int, work: Path, base_tree: Path | None) -> list[dict[str, Any]]:
    """Rows of the baseline (when `base_tree` is given) and this branch at `n` chunks."""
    ours_dir, base_dir = work / f"ours-{n}", work / f"base-{n}"
    run.log(f"{n:,} chunks: writing")
    built = worker(ROOT, {"step": "build", "n": n, "data_dir": str(ours_dir)})
    run.log(f"{n:,} chunks: written in {built['write_s']:.0f} s (drawn in {built['draw_s']:.0f} s)")
    runs = [("columnar", ROOT, ours_dir)]
    if base_tree is not None:  # as the baseline's own writer leaves it: segments (format 3) if it has them
        (shutil.copytree if (base_tree / "agent" / "search" / "segments.py").exists() else as_format_1)(ours_dir, base_dir)
        runs.insert(0, ("before", base_tree, base_dir))
    rows = []
    for label, tree, data in runs:
        run.log(f"{n:,} chunks: measuring {label}")
        spec = {"step": "measure", "data_dir": str(data), "series": SERIES if label == "columnar" else 0}
        row = worker(tree, spec) | {"code": label, "raw_mb": built["raw_mb"], "build": built}
        row["memory_mb"] = row["rss_after_index_mb"] - row["rss_start_mb"]
        row["memory_x_raw"] = row["memory_mb"] / built["raw_mb"]
        row["ready_s"] = row["load_s"] + row["keyword_index_s"]
        rows.append(row)
        shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(ours_dir, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="comma-separated chunk counts (default 10000,100000,1000000)")
    p.add_argument("--baseline", default=BASELINE, help=f"git revision measured against (default {BASELINE})")
    p.add_argument("--baseline-max", type=int, default=100_000, help="largest size the baseline runs at")
    args = p.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("2000,10000" if args.quick else "10000,100000,1000000")).split(",")]
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    run.params = {"sizes": sizes, "dimension": 512, "added_file_chunks": 900, "baseline": args.baseline,
                  "baseline_max": args.baseline_max}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        base_tree = work / "base-tree"
        base_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive, check=True)
        for n in sizes:
            rows += measure_size(run, n, work, base_tree if n <= args.baseline_max else None)
    run.results = {"rows": rows}
    shown = rows + ([ISSUE_1M] if 1_000_000 in sizes and args.baseline_max < 1_000_000 else [])
    run.table(f"Collections at scale: this branch (columnar) vs {args.baseline} (before), same data, same run",
              markdown_table(
        ["chunks", "code", "raw vectors+texts MB", "memory MB (x raw)", "load s", "keyword index s",
         "load + index s", "add 900 s", "keyword index after the add s", "remove 900 s",
         "remove from the middle s", "keyword index after it s",
         f"{SERIES} adds in a row: mean / max s", "peak RSS MB"],
        [[f"{r['n']:,}", r["code"], r.get("raw_mb", "-"),
          f"{r['memory_mb']:.0f}" + (f" ({r['memory_x_raw']:.2f}x)" if "memory_x_raw" in r else ""), r["load_s"],
          r["keyword_index_s"], r["load_s"] + r["keyword_index_s"], r["add_s"], r.get("index_after_add_s", "-"),
          r["remove_s"], r.get("remove_middle_s", "-"), r.get("index_after_remove_middle_s", "-"), f"{np.mean(r['series_s']):.2f} / {max(r['series_s']):.2f}" if r.get("series_s") else "-",
          r.get("peak_rss_mb", "-")] for r in sorted(shown, key=lambda r: (r["n"], r["code"] == "columnar"))]))
    ours = {r["n"]: r for r in rows if r["code"] == "columnar"}
    big, small = max(ours), min(ours)
    run.goals = [
        Goal(f"memory at {big:,}, x raw vectors+texts", ours[big]["memory_x_raw"], "<=", 2.0),
        Goal(f"load + keyword index at {big:,}", ours[big]["ready_s"], "<=", 10.0, "s"),
        Goal(f"add at {big:,} / add at {small:,}", ratio(ours[big]["add_s"], ours[small]["add_s"]), "<=", 3.0),
        Goal(f"add + keyword index after it at {big:,} / at {small:,}",
             ratio(ours[big]["add_s"] + ours[big]["index_after_add_s"],
                   ours[small]["add_s"] + ours[small]["index_after_add_s"]), "<=", 3.0),
        Goal(f"remove at {big:,} / remove at {small:,}", ratio(ours[big]["remove_s"], ours[small]["remove_s"]),
             "<=", 3.0),
        Goal(f"remove from the middle + keyword index after it at {big:,} / at {small:,}",
             ratio(ours[big]["remove_middle_s"] + ours[big]["index_after_remove_middle_s"],
                   ours[small]["remove_middle_s"] + ours[small]["index_after_remove_middle_s"]), "<=", 3.0),
        Goal(f"mean of {SERIES} adds at {big:,} / at {small:,}",
             ratio(float(np.mean(ours[big]["series_s"])), float(np.mean(ours[small]["series_s"]))), "<=", 3.0),
    ]
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
