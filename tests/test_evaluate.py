import json
import math

import pytest
from langchain_core.documents import Document

from agent.evaluate import (
    Question,
    evaluate,
    format_table,
    hit_at_k,
    load_questions,
    percentile,
    reciprocal_rank,
)


def test_hit_at_k():
    ranked = [3, 7, 7, 2, 9]
    assert hit_at_k(ranked, {2}, 5) == 1.0
    assert hit_at_k(ranked, {2}, 3) == 0.0
    assert hit_at_k(ranked, {3}, 1) == 1.0
    assert hit_at_k(ranked, {4, 9}, 5) == 1.0
    assert hit_at_k([], {1}, 5) == 0.0
    assert hit_at_k([("a.pdf", 2)], {("b.pdf", 2)}, 1) == 0.0  # file must match too


def test_reciprocal_rank():
    assert reciprocal_rank([5, 6, 7], {7}) == pytest.approx(1 / 3)
    assert reciprocal_rank([5, 6, 7], {5, 7}) == 1.0
    assert reciprocal_rank([5, 6, 7], {8}) == 0.0
    assert reciprocal_rank([5, 6, 7], {7}, k=2) == 0.0


def test_percentile():
    values = [10, 20, 30, 40]
    assert percentile(values, 0) == 10
    assert percentile(values, 100) == 40
    assert percentile(values, 50) == pytest.approx(25)
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7], 95) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_load_questions_skips_unanswerable(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "q1", "question": "What?", "file": "a.pdf", "page": 2, "lang": "en"},
        {"id": "q2", "question": "哪一页?", "file": "b.pdf", "page": 1, "alt_pages": [3], "lang": "zh",
         "kind": "manual"},
        {"id": "q3", "question": "No answer", "file": None, "page": None},
        {"id": "q4", "question": "Scan", "file": "s.pdf", "page": 1, "needs_ocr": True},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    qs = load_questions(path)
    assert [q.id for q in qs] == ["q1", "q2", "q4"]
    assert qs[1].gold == {("b.pdf", 1), ("b.pdf", 3)}
    assert [q.category for q in qs] == ["text", "manual", "scanned"]


def _doc(file, page):
    return Document(page_content="x", metadata={"file": file, "page": page})


def test_evaluate_breakdowns_and_table():
    qs = [
        Question(id="a", question="qa", file="m.pdf", page=1, lang="en", kind="manual"),
        Question(id="b", question="qb", file="m.pdf", page=2, lang="zh", kind="manual"),
        Question(id="c", question="qc", file="t.pdf", page=3, lang="en"),
    ]
    answers = {  # mode -> question -> ranked (file, page)
        "vector": {"qa": [("m.pdf", 1)], "qb": [("m.pdf", 9), ("m.pdf", 2)], "qc": [("x.pdf", 3)]},
        "bm25": {"qa": [("m.pdf", 5)] * 6 + [("m.pdf", 1)], "qb": [("m.pdf", 2)], "qc": [("t.pdf", 3)]},
    }
    seen_k = []

    def search_fn(question, mode, k):
        seen_k.append(k)
        return [_doc(f, p) for f, p in answers[mode][question]]

    report = evaluate(qs, search_fn, ks=(1, 5), modes=("vector", "bm25"))
    assert min(seen_k) >= 5
    vec_all = report.get("vector", "all")
    assert vec_all.n == 3
    assert vec_all.hits[1] == pytest.approx(1 / 3)
    assert vec_all.hits[5] == pytest.approx(2 / 3)
    assert vec_all.mrr == pytest.approx((1 + 0.5 + 0) / 3)
    assert report.get("vector", "manual:zh").hits[5] == 1.0
    assert report.get("vector", "kind:text").hits[5] == 0.0
    bm_manual = report.get("bm25", "kind:manual")
    assert bm_manual.hits[5] == 0.5  # page 1 only at rank 7
    assert bm_manual.mrr == pytest.approx((1 / 7 + 1) / 2)
    assert report.misses["vector"] == ["c"]
    assert report.per_question["bm25"]["a"] == 7
    table = format_table(report)
    assert "| manual:zh | 1 | vector | 0.000 | 1.000 | 0.500 |" in table
    assert table.splitlines()[0].startswith("| group | n | mode | hit@1 | hit@5 | MRR@10 |")
