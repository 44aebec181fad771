"""Quality floor: hybrid hit@1 and hit@5 on the held-out evalset split may not drop > 0.02 below the committed figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import quality

COMMITTED = Path(quality.__file__).parent / "results" / "quality-evalset-test.json"
TOLERANCE = 0.02


def _hybrid_all(report: dict) -> dict[str, float]:
    row = next(r for r in report["results"]["local"]["rows"] if r["mode"] == "hybrid" and r["group"] == "all")
    return row["hits"]


@pytest.mark.slow  # ingests 8 PDFs, OCR of an 8-page scan among them (~50-90 s); scripts/test.sh fetches them first
def test_hybrid_does_not_drop_below_committed_figures(tmp_path: Path) -> None:
    assert quality.main(["--set", "evalset", "--split", "test", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "quality-evalset-test.json").read_text(encoding="utf-8"))
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for key in ("files", "questions"):  # the same questions over the same documents, none dropped
        assert report["params"][key] == committed["params"][key], key
    assert all(r["status"] == "added" and r["chunks"] > 0 for r in report["results"]["local"]["ingested"])
    now, floor = _hybrid_all(report), _hybrid_all(committed)
    for k in ("1", "5"):
        assert now[k] >= floor[k] - TOLERANCE, f"hybrid hit@{k} {now[k]:.3f} < committed {floor[k]:.3f} - {TOLERANCE}"
