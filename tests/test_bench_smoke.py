"""The benchmark harness: its arithmetic and tables on fixed inputs, and a smoke run of three
benches at tiny sizes (`--quick`, into a temp dir) that checks the JSON they write."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import common
from bench.common import (
    Goal,
    markdown_table,
    median,
    overhead_pct,
    ratio,
    speedup,
    summarize,
)
from tests.support import DEVSET_PDFS

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ arithmetic

def test_median_and_summary_on_fixed_samples():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4, 1, 3, 2]) == 2.5
    assert math.isnan(median([]))
    assert median([1.0, float("nan"), 3.0]) == 2.0  # missing values are ignored
    s = summarize([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert s["n"] == 10 and s["median"] == 5.5 and s["min"] == 1 and s["max"] == 10
    assert s["p95"] == pytest.approx(np.percentile(np.arange(1, 11), 95))  # linear interpolation, as numpy
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["median"])


def test_ratios_speedup_and_overhead():
    assert speedup(baseline_seconds=30.0, ours_seconds=20.0) == 1.5  # ours 1.5x faster
    assert speedup(10.0, 20.0) == 0.5
    assert overhead_pct(11.5, 10.0) == pytest.approx(15.0)
    assert overhead_pct(10.0, 10.0) == 0.0
    assert math.isnan(ratio(1.0, 0.0)) and math.isnan(speedup(1.0, float("nan"))) and math.isnan(ratio(None, 1))
    assert common.rate(120, 4.0) == 30.0


def test_goals_compare_and_report_missing_values():
    assert Goal("speed", 1.6, ">=", 1.5).met is True
    assert Goal("speed", 1.4, ">=", 1.5).met is False
    assert Goal("p50", 49.9, "<", 50.0).met is True and Goal("p50", 50.0, "<", 50.0).met is False
    assert Goal("none", float("nan"), "<", 1.0).met is None
    assert Goal("x", 1.0, "<=", 1.0).as_dict()["met"] is True
    table = common.goals_table([Goal("speed", 1.4, ">=", 1.5, "x")])
    assert "| speed | >= 1.50x | 1.40x | MISSED |" in table


def test_markdown_table_formats_cells_and_checks_shape():
    table = markdown_table(["name", "n", "ms"], [["a|b", 3, 1234.5678], ["c", None, float("nan")], ["d", 7, 0.01234]])
    assert table.splitlines() == [
        "| name | n | ms |",
        "|:---|---:|---:|",
        "| a\\|b | 3 | 1235 |",
        "| c | – | – |",
        "| d | 7 | 0.012 |",
    ]
    assert common.fmt(12.345) == "12.3" and common.fmt(1.2345) == "1.23" and common.fmt(True) == "yes"
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [[1]])


def test_json_safe_turns_nan_and_numpy_into_plain_json():
    data = common.json_safe({"a": float("nan"), "b": np.float32(1.5), "c": np.arange(3), "d": (1, Path("/x"))})
    assert data == {"a": None, "b": 1.5, "c": [0, 1, 2], "d": [1, "/x"]}
    json.dumps(data, allow_nan=False)


def test_blas_threads_can_be_read_and_set_in_process():
    before = common.blas_threads()
    if not before:
        pytest.skip("no OpenBLAS loaded")
    common.set_blas_threads(1)
    assert common.blas_threads()[0] == 1
    common.set_blas_threads(before[0])
    assert common.blas_threads()[0] == before[0]


# ------------------------------------------------------------------ smoke runs

def run_bench(name: str, out: Path, *extra: str, timeout: float = 120, writes: str | None = None) -> dict:
    """Run bench `name` --quick into `out`; its JSON (named `writes`, default `name`) is returned once checked."""
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick", "--out", str(out), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = out / f"{writes or name}.json"
    assert path.exists(), proc.stdout[-2000:]
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(common.RESULT_KEYS) <= set(data), set(common.RESULT_KEYS) - set(data)
    assert data["bench"] == (writes or name) and data["quick"] is True and data["machine"]["cpus"]
    assert data["tables"] and all(t.startswith("| ") for t in data["tables"].values())
    assert "| " in proc.stdout  # the Markdown tables are printed too
    return data


needs_devset = pytest.mark.skipif(not DEVSET_PDFS.exists(), reason=f"devset PDFs not found at {DEVSET_PDFS}")


@needs_devset
def test_ingest_bench_quick_writes_its_json(tmp_path):
    data = run_bench("ingest", tmp_path)
    result = data["results"]["quick"]
    for pipeline in ("ours", "baseline", "floor"):
        assert result[pipeline]["pages"] == 6 and result[pipeline]["seconds"] > 0
    assert result["ours"]["chunks"] == result["floor"]["chunks"]
    assert result["speedup_vs_baseline"] > 0 and result["unchanged_in_process_s"]["median"] < 1.0
    assert {g["name"].split(" (")[0] for g in data["goals"]} >= {"ours vs LangChain tutorial pipeline"}


@needs_devset
def test_retrieval_latency_bench_quick_writes_its_json(tmp_path):
    data = run_bench("retrieval_latency", tmp_path)
    measure = data["results"]["2000"]["measure"]
    assert {"hybrid|default", "vector|default", "bm25|default", "hybrid|1"} <= set(measure["latency_ms"])
    assert measure["latency_ms"]["hybrid|default"]["n"] == 20 and measure["first_search_hits"] == 5
    assert measure["load_s"] > 0 and measure["breakdown_ms"]["total"] > 0
    assert measure["title_vectors"] > 0  # pages carry section titles with vectors, as the product ingests them
    build = data["results"]["2000"]["build"]
    assert build["index"] == "exact" and build["add_one_s"] > 0 and build["remove_one_s"] > 0
    rows = data["results"]["ann"]["2000"]["rows"]
    assert any(r["index"].startswith("exact") and r["recall_at_10"] == 1.0 for r in rows)
    assert sum(r.get("shipped", False) for r in rows) == 2  # the product's IVF on clustered and uniform data
    assert all(0 <= r["recall_at_10"] <= 1 for r in rows)


def test_ocr_spacing_bench_quick_scores_the_ocr_text_before_and_after(tmp_path):
    data = run_bench("ocr_spacing", tmp_path, writes="ocr_spacing-design")
    rows = data["results"]["pages"]
    assert len(rows) == 2 and all(r["truth_words"] > 50 for r in rows)
    assert all(0.5 < r[k] <= 1 for r in rows for k in ("recall_before", "recall_after", "precision_before"))
    assert data["results"]["weighted_mean"]["recall_after"] >= data["results"]["weighted_mean"]["recall_before"]


@pytest.mark.slow  # OCR of a 3-page scan in two fresh processes and twice in the parser child (~40 s)
def test_ocr_memory_bench_quick_reads_the_scan_whole_in_every_process(tmp_path):
    data = run_bench("ocr_memory", tmp_path, timeout=300)
    runs = data["results"]["processes"]
    assert len(runs) == 2 and all(r["ocr_pages"] == 3 and not r["warnings"] and r["VmPeak"] > r["VmHWM"] > 0.1
                                  for r in runs.values())
    assert len({r["chars"] for r in runs.values()}) == 1  # the cache changes memory, not the text
    child = data["results"]["child"]
    assert [c[1] for c in child] == ["4", "6"] and all(c[-1] == "-" for c in child)  # limits; no warning


@needs_devset
def test_quality_bench_quick_writes_its_json(tmp_path):
    data = run_bench("quality", tmp_path)
    local = data["results"]["local"]
    assert [r["status"] for r in local["ingested"]] == ["added", "added"]
    modes = {r["mode"] for r in local["rows"]}
    assert modes == {"vector", "bm25", "hybrid"}
    overall = [r for r in local["rows"] if r["group"] == "all"]
    assert all(r["n"] == data["params"]["questions"] > 0 and 0 <= r["mrr"] <= 1 for r in overall)


@pytest.mark.slow  # ~25 s: three phases of 4 questions over two Ollama doubles
def test_pool_bench_quick_spreads_and_survives_a_killed_host(tmp_path):
    data = run_bench("pool", tmp_path, "--questions", "4", "--token-delay", "0.01")
    two, killed = data["results"]["two hosts"], data["results"]["two hosts, first killed"]
    assert data["results"]["one host"]["per_host"] == [4, 0]
    assert sum(two["per_host"]) == 4 and min(two["per_host"]) >= 1  # 2/2 unless a user starts late on a busy box
    assert killed["failed"] == 0 and killed["answered"] + killed["cut"] == 4


@pytest.mark.slow  # ~40 s: PostgreSQL, two doubles, two app instances
def test_load_bench_quick_stores_every_turn_in_postgres(tmp_path):
    data = run_bench("load", tmp_path, "--turns", "16", timeout=300)
    result = data["results"]
    assert result["answered"] == result["stored"] == 16 and result["lost"] == 0 and not result["failed"]
    assert not result["short_conversations"] and all(n > 0 for n in result["chat_requests_per_host"])
