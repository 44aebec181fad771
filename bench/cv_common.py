"""Pieces every cross-validation bench (bench/cv_*.py) shares: a question's row, its candidate pages, a weight row,
and the four reports (pooled and tune split alone, by (hit@1 + hit@5) / 2 and by hit@1 alone)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def weight_vector(weights: dict[str, float], signals: Sequence[str]) -> list[float]:
    """A weights dict as one row over `signals` (0 for a signal it does not name)."""
    return [weights.get(s, 0.0) for s in signals]


def candidates(ps: Any, raw: dict[str, np.ndarray], extra: np.ndarray | None = None) -> np.ndarray:
    """The pages the product can rank: chunk BM25, a fetched vector or a matching title (`extra`: a bench's own)."""
    found = (raw["bm25_chunk"] > 0) | ps.view.page_max(ps.found) | (raw["heading"] > 0)
    return np.flatnonzero(found if extra is None else found | extra)


def question_row(q: Any, z: dict[str, np.ndarray], cand: np.ndarray, keys: Sequence[Any], signals: Sequence[str],
                 **extra: Any) -> dict[str, Any]:
    """One question's row for `cross_validate`: its signals over the candidate pages and which of them are gold."""
    return {"id": q.id, "file": q.file, "lang": q.lang, **extra, "z": np.stack([z[s][cand] for s in signals], axis=1),
            "gold": np.array([keys[int(p)] in q.gold for p in cand])}


def four_reports(rows: list[dict[str, Any]], report: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """`report(rows, title, at1=...)` over the pooled rows and the tune split's, with both objectives."""
    tune = [r for r in rows if r["set"] == "evalset:tune"]
    return {"pooled": report(rows, "Pooled (devset + tune split)"), "tune": report(tune, "Tune split alone"),
            "pooled_hit1": report(rows, "Pooled, weights chosen by hit@1 alone", at1=1.0),
            "tune_hit1": report(tune, "Tune split alone, weights chosen by hit@1 alone", at1=1.0)}
