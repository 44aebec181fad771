"""The evaluation set in bench/evalset: split by document, both languages held out, gold pages hold the evidence."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.evalset.build import TEST_FILES, _pages, gold_pages

EVALSET = Path(__file__).resolve().parent.parent / "bench" / "evalset"
ROWS = [json.loads(line) for line in (EVALSET / "questions.jsonl").read_text(encoding="utf-8").splitlines()]


def test_split_is_by_document_and_holds_out_both_languages() -> None:
    splits = {(r["file"], r["split"]) for r in ROWS}
    assert len({f for f, _ in splits}) == len(splits), "a document is in both splits"
    assert {r["file"] for r in ROWS if r["split"] == "test"} == TEST_FILES
    held_out = Counter(r["lang"] for r in ROWS if r["split"] == "test")
    assert held_out["en"] >= 20 and held_out["zh"] >= 20


def test_size_and_ids() -> None:
    assert len(ROWS) >= 150 and len({r["file"] for r in ROWS}) >= 6
    assert len({r["id"] for r in ROWS}) == len(ROWS)


@pytest.mark.skipif(not (EVALSET / "pdfs").is_dir(), reason="PDFs not fetched (python -m bench.evalset.fetch)")
def test_gold_page_holds_the_evidence() -> None:
    cache: dict[str, list[str]] = {}
    for r in ROWS:
        pages = cache.setdefault(r["file"], _pages(EVALSET / "pdfs" / r["file"]))
        assert gold_pages(pages, r["evidence"])[:1] == [r["page"]], r["id"]
