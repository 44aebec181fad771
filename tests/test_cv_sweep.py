"""bench.cv_sweep scoring: hits under a weight vector, and a leave-one-document-out choice that never sees its fold."""

from __future__ import annotations

import numpy as np

from bench.cv_common import cross_validate, hits
from bench.cv_sweep import SIGNALS


def _row(file: str, z_gold: list[float], z_other: list[list[float]]) -> dict:
    """One question: the gold page's signals first, then the other candidates'."""
    pad = lambda v: v + [0.0] * (len(SIGNALS) - len(v))
    z = np.array([pad(z_gold)] + [pad(v) for v in z_other])
    return {"file": file, "lang": "en", "terms": 3, "z": z, "gold": np.array([True] + [False] * len(z_other))}


def test_hits_rank_the_gold_page_among_the_candidates() -> None:
    row = _row("a.pdf", [1.0, 0.0], [[0.0, 2.0], [0.5, 0.5]] + [[0.0, 1.5]] * 4)
    chunk_only, page_only = np.eye(len(SIGNALS))[:2]
    h = hits([row], np.array([chunk_only, page_only]))
    assert h[0, 0].tolist() == [1.0, 1.0]  # by bm25_chunk the gold page is first
    assert h[0, 1].tolist() == [0.0, 0.0]  # by bm25_page five pages beat it


def test_each_fold_is_chosen_without_its_own_questions() -> None:
    # documents a and b prefer signal 0; document c prefers signal 1
    rows = [_row(f, g, [o]) for f, g, o in (("a", [1, 0], [0, 1]), ("b", [1, 0], [0, 1]), ("c", [0, 1], [1, 0]))]
    weights = np.eye(len(SIGNALS))[:2]
    cv = cross_validate(rows, weights)
    assert cv["chosen"]["c"].tolist() == weights[0].tolist()  # chosen on a and b only
    assert cv["held"][:, 0].tolist() == [1.0, 1.0, 0.0]  # so held-out c misses
    assert cv["in"][:, 0].sum() == 2.0


def test_the_sweeps_score_every_signal_the_product_weighs() -> None:
    """A 'product' row that leaves a weighted signal out scores another ranking than the one shipped."""
    import bench.cv_atype
    import bench.cv_center
    import bench.cv_compound
    import bench.cv_docs
    import bench.cv_mt
    import bench.cv_pivot
    import bench.cv_prose
    import bench.cv_rank
    import bench.cv_sections
    from agent.search.retrieval import WEIGHTS

    for signals in (SIGNALS, bench.cv_sections.SIGNALS, bench.cv_prose.SIGNALS, bench.cv_docs.SIGNALS,
                    bench.cv_atype.SIGNALS, bench.cv_compound.SIGNALS, bench.cv_pivot.SIGNALS, bench.cv_mt.SIGNALS,
                    bench.cv_center.SIGNALS):
        assert set(WEIGHTS) <= set(signals)
    assert set(bench.cv_rank.product_weights()) <= set(bench.cv_rank.FEATURES)


def test_the_objective_can_weigh_hit_at_1_alone() -> None:
    # signal 0 puts q1's gold page first and the others out of the top 5; signal 1 puts all three second
    q1 = _row("a", [2, 1], [[0, 3]])
    q2, q3 = (_row(f, [0, 1], [[1, 3]] + [[1, 0]] * 5) for f in ("b", "c"))
    weights = np.eye(len(SIGNALS))[:2]
    assert cross_validate([q1, q2, q3], weights)["in_weights"].tolist() == weights[1].tolist()
    assert cross_validate([q1, q2, q3], weights, at1=1.0)["in_weights"].tolist() == weights[0].tolist()


def test_language_centring_takes_each_language_s_mean_out_and_keeps_unit_length() -> None:
    from bench.cv_center import centred

    # two English rows share a direction (0, 0, 1) the Chinese row does not; centring leaves what tells them apart
    vectors = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    out, means = centred(vectors, np.array([False, False, True]))
    assert means[False].tolist() == [0.5, 0.5, 1.0] and means[True].tolist() == [1.0, 1.0, 0.0]
    assert np.allclose(out[0], [2 ** -0.5, -(2 ** -0.5), 0.0]) and np.allclose(out[1], -out[0])
    assert out[2].tolist() == [0.0, 0.0, 0.0]  # a language of one row: nothing left
