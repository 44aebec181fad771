"""bench.cv_minilm: the MiniLM signal as the product would see it, and English-only families leave zh alone."""

from __future__ import annotations

import numpy as np

from bench.cv_minilm import FETCH, SIGNALS, families, fetched, fixed, is_english


def test_only_the_fetched_chunks_keep_their_similarity_the_rest_rank_below_them() -> None:
    sims = np.linspace(-1.0, 1.0, FETCH + 50)[::-1].copy()
    out = fetched(sims)
    kept = out == sims
    assert kept.sum() == FETCH and kept[:FETCH].all()  # the FETCH nearest
    assert (out[~kept] < sims[:FETCH].min()).all() and len(set(out[~kept])) == 1  # one floor below them
    assert (fetched(sims[:10]) == sims[:10]).all()  # fewer chunks than FETCH: all kept


def test_a_question_is_english_unless_it_holds_cjk_ideographs() -> None:
    assert is_english("How do I restore a backup?")
    assert not is_english("如何 恢复 backup？")


def test_english_only_families_score_a_chinese_question_as_the_product_does() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, len(SIGNALS)))
    col = {s: i for i, s in enumerate(SIGNALS)}
    z[:, col["vector_en"]] = z[:, col["vector_minilm_en"]] = 0.0  # a zh question's row, as collect builds it
    z[:, col["vector_not_en"]] = z[:, col["vector"]]
    product = z @ fixed()["product WEIGHTS"][0]
    for name, grid in families().items():
        if name.startswith("English only"):
            assert np.allclose(z @ grid.T, product[:, None]), name
    assert not np.allclose(z @ families()["MiniLM next to vector"].T, product[:, None])
