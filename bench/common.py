"""Shared benchmark helpers: timing, summaries, ratios, goals, Markdown tables, JSON results,
machine/load info, memory, and worker subprocesses.

Conventions for every bench:
- `python -m bench.NAME [--quick] [--repeats N] [--out DIR]`;
- it prints Markdown tables and writes `<out>/NAME.json` (default `bench/results/`, or
  `bench/results/quick/` with `--quick`, so a quick run never overwrites full results);
- the JSON always has the keys in `RESULT_KEYS`;
- figures are medians over repeats; the machine's load average before and after the run
  is recorded, since other work shares the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.evaluate import percentile
from tests.support import ROOT

RESULTS_DIR = ROOT / "bench" / "results"


RESULT_KEYS = ("bench", "quick", "command", "started", "seconds", "machine", "params", "results", "goals", "tables")
WORKER_MARK = "BENCH-RESULT "


# ------------------------------------------------------------------ devset text

def page_texts(pdf: Path) -> list[str]:
    """Cleaned text of each page of a devset PDF, without OCR; raises DocumentError if unreadable."""
    from agent.ingest.parse import parse_pdf

    return [page.text for page in parse_pdf(pdf, max_bytes=1 << 30, max_pages=100_000, ocr=False).pages]


# ------------------------------------------------------------------ statistics

def median(values: Iterable[float]) -> float:
    """Median of the finite values (NaN when there are none)."""
    data = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.median(data) if data else math.nan


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, median, p95, min, max of a sample (p95 by linear interpolation, as numpy)."""
    data = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not data:
        return {"n": 0, "median": math.nan, "p95": math.nan, "min": math.nan, "max": math.nan}
    return {"n": len(data), "median": statistics.median(data), "p95": percentile(data, 95),
            "min": min(data), "max": max(data)}


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when either is missing or the denominator is 0."""
    try:
        numerator, denominator = float(numerator), float(denominator)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def speedup(baseline_seconds: float, ours_seconds: float) -> float:
    """How many times faster ours is than the baseline (>1 = faster): baseline / ours."""
    return ratio(baseline_seconds, ours_seconds)


def overhead_pct(value: float, floor: float) -> float:
    """How far above the floor value is, in percent: 100 * (value / floor - 1)."""
    r = ratio(value, floor)
    return (r - 1.0) * 100.0 if not math.isnan(r) else math.nan


def rate(count: float, seconds: float) -> float:
    """Items per second."""
    return ratio(count, seconds)


# ------------------------------------------------------------------ goals

@dataclass
class Goal:
    """A claim checked by a bench: `value op target` (op one of <, <=, >, >=)."""

    name: str
    value: float
    op: str
    target: float
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return None
        ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
        if self.op not in ops:
            raise ValueError(f"unknown comparison {self.op!r}")
        return bool(ops[self.op](self.value, self.target))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def goals_table(goals: Sequence[Goal]) -> str:
    rows = [[g.name, f"{g.op} {fmt(g.target)}{g.unit}", f"{fmt(g.value)}{g.unit}",
             {True: "met", False: "MISSED", None: "n/a"}[g.met], g.note] for g in goals]
    return markdown_table(["goal", "target", "measured", "status", "note"], rows)


# ------------------------------------------------------------------ formatting

def fmt(value: Any, digits: int | None = None) -> str:
    """A table cell: ints as is, floats with sensible precision, NaN/None as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if digits is None:
            a = abs(value)
            digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 0.1 else 3
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub Markdown table. Cells go through `fmt`; `|` in cells is escaped.

    align: one letter per column, l or r (default: l for the first column, r for the rest).
    """
    headers = list(headers)
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError("align needs one letter per column")
    body = [[fmt(c).replace("|", "\\|") for c in row] for row in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


# ------------------------------------------------------------------ machine, memory

def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU count and model, memory, versions, load average."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "loadavg": load_average(), "commit": git_commit()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    return info


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ worker subprocesses

def worker_output(payload: dict[str, Any]) -> None:
    """A worker's result: one marked JSON line on stdout (other output is ignored)."""
    sys.stdout.write(WORKER_MARK + json.dumps(payload, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run_worker(module: str, spec: dict[str, Any], *, timeout: float = 3600, env: dict[str, str] | None = None,
               cwd: Path = ROOT) -> dict[str, Any]:
    """Run `python -m module --worker JSON` in a fresh process (clean memory figures) and
    return the JSON it reported. Raises RuntimeError with the worker's stderr tail on failure."""
    cmd = [sys.executable, "-m", module, "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_MARK):
            return json.loads(line[len(WORKER_MARK):])
    raise RuntimeError(f"worker {module} failed (exit {proc.returncode}): {proc.stderr[-3000:]}")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus the app's settings variables (so a bench is not steered by
    whatever the shell has), plus `extra`."""
    from agent.config import ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# ------------------------------------------------------------------ CLI and results

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run (seconds)")
    p.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default: per bench)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for NAME.json (default bench/results, or bench/results/quick with --quick)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def results_dir(args: argparse.Namespace) -> Path:
    if args.out is not None:
        return Path(args.out)
    return RESULTS_DIR / "quick" if args.quick else RESULTS_DIR


class Run:
    """One bench run: collects params, results, goals and tables, then prints and saves."""

    def __init__(self, name: str, args: argparse.Namespace, argv: Sequence[str] | None = None) -> None:
        self.name = name
        self.args = args
        self.started = time.time()
        self._t0 = time.perf_counter()
        self.machine = machine_info()
        self.command = "python -m bench." + name + (" " + " ".join(argv) if argv else "")
        self.params: dict[str, Any] = {}
        self.results: dict[str, Any] = {}
        self.goals: list[Goal] = []
        self.tables: dict[str, str] = {}

    def table(self, title: str, text: str) -> None:
        self.tables[title] = text
        print(f"\n### {title}\n\n{text}\n", flush=True)

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self._t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    def payload(self) -> dict[str, Any]:
        machine = {**self.machine, "loadavg_before": self.machine.pop("loadavg", []), "loadavg_after": load_average()}
        self.machine = machine
        return {
            "bench": self.name, "quick": bool(self.args.quick), "command": self.command,
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - self._t0, 1), "machine": machine, "params": self.params,
            "results": self.results, "goals": [g.as_dict() for g in self.goals], "tables": self.tables,
        }

    def finish(self) -> Path:
        if self.goals:
            self.table("Goals", goals_table(self.goals))
        data = self.payload()
        print(f"load average (1/5/15 min) before {data['machine']['loadavg_before']}, "
              f"after {data['machine']['loadavg_after']}; {data['machine'].get('cpus')} cores; "
              f"{data['seconds']:.0f} s; commit {data['machine'].get('commit')}", flush=True)
        out = results_dir(self.args)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(json_safe(data), indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                       encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {path}", flush=True)
        return path


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf -> None, numpy scalars/arrays -> Python, paths -> str, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy
        return json_safe(value.tolist())
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


# ------------------------------------------------------------------ BLAS threads (this process only)

def _openblas_libs() -> list[tuple[Any, str]]:
    """(ctypes lib, symbol prefix) of every OpenBLAS loaded in this process (numpy's, faiss')."""
    import ctypes

    found, seen = [], set()
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    for line in maps:
        path = line.split()[-1] if line.split() else ""
        if "openblas" not in path.lower() or path in seen or not path.startswith("/"):
            continue
        seen.add(path)
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "")):
            if hasattr(lib, f"{prefix}set_num_threads{suffix}"):
                found.append((lib, f"{prefix}%s{suffix}"))
                break
    return found


def blas_threads() -> list[int]:
    """Thread count of each loaded OpenBLAS (numpy first when loaded)."""
    return [int(getattr(lib, pattern % "get_num_threads")()) for lib, pattern in _openblas_libs()]


def set_blas_threads(n: int) -> list[int]:
    """Set every loaded OpenBLAS to n threads (what threadpoolctl does); returns the old counts."""
    old = blas_threads()
    for lib, pattern in _openblas_libs():
        getattr(lib, pattern % "set_num_threads")(int(n))
    return old
