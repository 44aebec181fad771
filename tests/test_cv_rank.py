"""bench/cv_rank.py: the per-query normalisations, the learned rankers and the row cache it is judged by."""

from __future__ import annotations

import numpy as np

from bench.cv_common import weight_vector
from bench.cv_rank import (
    FEATURES,
    RRF_K,
    _ranks,
    fit_listwise,
    fit_pairwise,
    load_rows,
    norm_grid,
    normalised,
    product_weights,
    save_rows,
)


def test_ranks_give_ties_the_best_rank():
    assert _ranks(np.array([3.0, 1.0, 3.0, 0.0])).tolist() == [1.0, 3.0, 1.0, 4.0]


def test_normalisations_of_one_signal():
    values = np.array([0.0, 2.0, 4.0, 1.0, 0.0])
    cand = np.array([1, 2, 3])
    out = normalised(values, cand)
    assert out["max"].tolist() == [0.5, 1.0, 0.25]
    assert abs(out["zc"].mean()) < 1e-12 and abs(out["zc"].std() - 1) < 1e-12
    for k in RRF_K:
        assert np.allclose(out[f"rrf{k}"], [k / (k + 2), k / (k + 1), k / (k + 3)])


def test_the_product_setting_is_on_its_own_normalisation_grid():
    """Cross-validation can always fall back to what the product does."""
    assert any(np.allclose(row, weight_vector(product_weights(), FEATURES)) for row in norm_grid(["z"]))


def _toy(rng: np.random.Generator, questions: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates whose gold page is the one highest on feature 0 (feature 1 is noise)."""
    x = rng.normal(size=(questions * 10, 2))
    owner = np.repeat(np.arange(questions), 10)
    gold = np.zeros(len(x), dtype=bool)
    for q in range(questions):
        gold[q * 10 + int(np.argmax(x[q * 10:(q + 1) * 10, 0]))] = True
    return x, gold, owner


def test_listwise_ranker_learns_the_signal_that_finds_the_gold_page():
    x, gold, owner = _toy(np.random.default_rng(1))
    w = fit_listwise(x, gold, owner, lam=1e-3)
    assert w[0] > 0 and w[0] > 5 * abs(w[1])


def test_pairwise_ranker_learns_the_signal_that_finds_the_gold_page():
    x, gold, owner = _toy(np.random.default_rng(2))
    diffs = np.concatenate([x[gold & (owner == q)] - x[~gold & (owner == q)] for q in range(owner.max() + 1)])
    w = fit_pairwise(diffs, np.full(len(diffs), 1.0 / 9), lam=1e-3)
    assert w[0] > 0 and w[0] > 5 * abs(w[1])


def test_rows_survive_the_cache_and_other_features_are_not_read(tmp_path):
    rng = np.random.default_rng(3)
    rows = [{"id": f"q{i}", "file": "a.pdf", "lang": "en", "set": "devset:all",
             "z": rng.normal(size=(n, len(FEATURES))), "gold": np.arange(n) == 0} for i, n in enumerate((3, 5))]
    path = tmp_path / "rows.npz"
    save_rows(rows, path)
    back = load_rows(path)
    assert back is not None and [r["id"] for r in back] == ["q0", "q1"] and back[1]["file"] == "a.pdf"
    assert all(np.array_equal(a["z"], b["z"]) and np.array_equal(a["gold"], b["gold"]) for a, b in zip(rows, back))
    with np.load(path) as d:
        np.savez(path, **{**dict(d), "features": np.array(FEATURES[:-1])})
    assert load_rows(path) is None
    assert load_rows(tmp_path / "absent.npz") is None
