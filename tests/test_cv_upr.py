"""bench.cv_upr: query-likelihood scores of the embedded model, their cache and their fusion with the search's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.chat.embedded import embedded_available
from bench import cv_upr


def _row(qid: str, scores: list[float], gold: list[bool]) -> dict:
    hits = [("a.pdf", n, f"page {n}", s) for n, s in enumerate(scores, 1)]
    return {"id": qid, "file": "a.pdf", "set": "devset:all", "question": "q?", "hits": hits, "gold": np.array(gold)}


def test_features_keep_only_fully_scored_questions_and_fuse_in_z_units() -> None:
    full, partial = _row("q1", [3.0, 2.0, 1.0], [False, False, True]), _row("q2", [2.0, 1.0], [True, False])
    scores = {cv_upr._key(full, h): ql for h, ql in zip(full["hits"], [-3.0, -2.0, -0.5])}
    scores[cv_upr._key(partial, partial["hits"][0])] = -1.0
    rows = cv_upr.features([full, partial], scores)
    assert [r["id"] for r in rows] == ["q1"]  # q2's second page is not scored: left out, not scored as 0
    z = rows[0]["z"]
    assert np.allclose(z.mean(axis=0), 0.0) and np.allclose(z.std(axis=0), 1.0)
    hybrid, fused = (cv_upr.hits(rows, np.array([[1.0, w]]))[0, 0] for w in (0.0, 4.0))
    assert hybrid[0] == 0 and fused[0] == 1  # the third page, first by likelihood, rises to the top


def test_scores_of_every_shard_are_read_back(tmp_path: Path) -> None:
    cv_upr._save(tmp_path / "upr-scores-0.json", {"a": -1.0})
    cv_upr._save(tmp_path / "upr-scores-1.json", {"b": -2.0})
    assert cv_upr.load_scores(tmp_path) == {"a": -1.0, "b": -2.0}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.skipif(not embedded_available(), reason="llama-cpp-python or the SmolLM2 weights are not installed")
def test_a_passage_that_answers_makes_the_question_more_likely() -> None:
    model = cv_upr.QueryLikelihood()
    question = "What is the boiling point of water at sea level?"
    relevant = "Water boils at 100 degrees Celsius at sea level, where the air pressure is one atmosphere."
    other = "The printer driver is configured in the control panel under devices and printers."
    assert model(relevant, question) > model(other, question)
