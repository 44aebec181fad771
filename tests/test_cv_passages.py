"""bench.cv_passages: a page cut into passages of a sentence or two, and a page scored by its best passage."""

from __future__ import annotations

import numpy as np

from bench.cv_passages import MIN_WEIGHT, best_passage, passages, weight


def test_pages_are_cut_at_sentences_and_lines_then_merged_to_the_minimum() -> None:
    text = ("Options\n" + "The first sentence says what the option does in some detail here. " * 2
            + "A short one.\nAnother line that goes on for a while to pass the minimum weight of a passage, surely.")
    cut = passages(text)
    assert len(cut) >= 2
    assert all(weight(p) >= MIN_WEIGHT for p in cut[:-1])
    assert " ".join(cut).split() == text.split()  # nothing lost, nothing added


def test_ideographs_weigh_more_so_a_chinese_passage_is_shorter() -> None:
    text = "使用 tlmgr 可以更新宏包。" * 6 + "\n" + "the same in English words, as many as that " * 6
    zh, last = passages(text)[0], passages(text)[-1]
    assert weight(zh) >= MIN_WEIGHT and len(zh) < MIN_WEIGHT
    assert "。" in zh and last.endswith("as many as that")


def test_a_page_takes_its_best_passage_and_an_empty_page_the_lowest() -> None:
    vectors = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    owners = np.array([0, 0, 2])
    assert best_passage(vectors, owners, np.array([0.0, 1.0]), 3).tolist() == [0.8, -1.0, 1.0]
