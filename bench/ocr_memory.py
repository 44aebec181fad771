"""OCR memory in the parser: address space (VmPeak) and resident peak (VmHWM) of `parse_pdf` reading scans, per
OpenVINO kernel-cache setting, each in a fresh process; then the shipped settings in the memory-limited child.

The recogniser's batches come in ever new widths, and OpenVINO's CPU plugin keeps kernels per input shape, so without
a bound the parser grows page after page past the child's limit (bench/README 11c). Documents: the evalset's
lppl-scan.pdf (8 dense pages) and R-data.pdf's first 30 pages through `bench.ocr.scanned_pdf` (seed 1).

    python -m bench.ocr_memory            # both documents, every variant
    python -m bench.ocr_memory --quick    # a 3-page scan, two variants
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Run, clean_env, markdown_table, parser, run_worker, worker_output

NAME = "ocr_memory"
GB = 1 << 30
#: name -> (OpenVINO CPU properties, extra environment); "shipped" is ocr.OPENVINO_CPU as it is
VARIANTS: dict[str, tuple[dict[str, str] | None, dict[str, str]]] = {
    "OpenVINO default cache (before)": ({}, {}),
    "cache 200": ({"CPU_RUNTIME_CACHE_CAPACITY": "200"}, {}),
    "cache 0 (shipped)": (None, {}),
    "cache 0, MALLOC_ARENA_MAX=2 (the child's)": (None, {"MALLOC_ARENA_MAX": "2"}),
}
QUICK = ("OpenVINO default cache (before)", "cache 0 (shipped)")
CHILD_LIMITS = (4 * GB, None)  # None: CHILD_MEMORY


def documents(tmp: Path, quick: bool) -> dict[str, Path]:
    """The scans to read: lppl-scan and a 30-page scan of R-data (quick: R-data's first 3 pages)."""
    import pypdfium2

    from bench.evalset.fetch import DEFAULT_DEST, ensure
    from bench.ocr import scanned_pdf

    ensure({"R-data.pdf"} if quick else {"R-data.pdf", "lppl-scan.pdf"})
    pages = 3 if quick else 30
    doc = pypdfium2.PdfDocument(str(DEFAULT_DEST / "R-data.pdf"))
    try:
        scan = scanned_pdf([doc[i] for i in range(pages)], tmp / f"R-data-scan{pages}.pdf", seed=1)
    finally:
        doc.close()
    return {scan.name: scan} if quick else {"lppl-scan.pdf": DEFAULT_DEST / "lppl-scan.pdf", scan.name: scan}


def worker(spec: dict[str, Any]) -> None:
    """In a fresh process: parse `spec["path"]` with OCR under the variant's OpenVINO properties; report the peaks."""
    from agent.ingest import ocr
    from agent.ingest.parse import parse_pdf

    if spec["props"] is not None:
        ocr.OPENVINO_CPU = spec["props"]
    t0 = time.perf_counter()
    parsed = parse_pdf(spec["path"], max_bytes=1 << 30, max_pages=10_000)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    worker_output({"seconds": time.perf_counter() - t0, "warnings": parsed.warnings,
                   "chars": sum(len(p.text) for p in parsed.pages), "ocr_pages": len(parsed.ocr_pages),
                   **{k: int(status[k].split()[0]) / (1 << 20) for k in ("VmPeak", "VmHWM")}})


def in_child(path: Path, memory: int | None) -> dict[str, Any]:
    """The shipped settings in the parser child given `memory` bytes (None: CHILD_MEMORY)."""
    from agent.ingest._child import CHILD_MEMORY, parse_in_child

    t0 = time.perf_counter()
    parsed = parse_in_child(path, max_bytes=1 << 30, max_pages=10_000, memory=memory)
    return {"limit_gb": (memory or CHILD_MEMORY) / GB, "seconds": time.perf_counter() - t0,
            "warnings": parsed.warnings, "chars": sum(len(p.text) for p in parsed.pages)}


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    names = QUICK if args.quick else tuple(VARIANTS)
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-ocr-memory-") as tmp:
        docs = documents(Path(tmp), args.quick)
        for doc, path in docs.items():
            for name in names:
                props, env = VARIANTS[name]
                r = run_worker("bench.ocr_memory", {"path": str(path), "props": props}, env=clean_env(**env))
                results[f"{doc} | {name}"] = r
                run.log(f"{doc}, {name}: {r['VmPeak']:.2f} / {r['VmHWM']:.2f} GB, {r['seconds']:.1f} s")
                rows.append([doc, name, f"{r['VmPeak']:.2f}", f"{r['VmHWM']:.2f}", f"{r['seconds']:.1f}",
                             r["ocr_pages"], r["chars"], "; ".join(r["warnings"]) or "-"])
        run.table("parse_pdf with OCR, one fresh process per row",
                  markdown_table(["document", "engine settings", "VmPeak GB", "VmHWM GB", "s", "OCR pages", "chars",
                                  "warnings"], rows))
        child = [[doc, f"{c['limit_gb']:.0f}", f"{c['seconds']:.1f}", c["chars"], "; ".join(c["warnings"]) or "-"]
                 for doc, path in docs.items() for c in (in_child(path, m) for m in CHILD_LIMITS)]
        run.table("the shipped settings in the parser child (parse_in_child)",
                  markdown_table(["document", "address space limit GB", "s", "chars", "warnings"], child))
    run.params = {"variants": {n: VARIANTS[n][0] for n in names}, "documents": list(docs), "os_cpus": os.cpu_count()}
    run.results = {"processes": results, "child": child}
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
