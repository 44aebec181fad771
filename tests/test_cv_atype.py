"""bench.cv_atype: the rule table classifies questions, and the form counts only near the question's terms."""

from __future__ import annotations

import numpy as np

from bench.cv_atype import AT, RULES, SIGNALS, chunk_evidence, classify, families, positions


def test_questions_fire_the_rule_of_their_answer_form_and_others_fire_none() -> None:
    assert classify("How many bytes does the header take?") == ["number"]
    assert classify("Which option turns off the cache?") == ["option"]
    assert classify("哪个命令可以列出字体？") == ["command"]
    assert classify("如何使用 Times New Roman 字体？") == ["instruction"]
    assert classify("What is XTS mode?") == []


def test_chinese_text_has_one_position_per_character_with_its_bigram() -> None:
    starts, terms = positions("运行 fc-list")
    assert terms[:2] == ["运行", "行"] and starts[:2] == [0, 1]
    assert len(terms) == 4  # 运, 行, fc, list


def test_a_form_counts_within_w_positions_of_a_question_term_and_not_the_questions_own() -> None:
    idf = {"cach": 2.0}  # the stemmed term of "cache"
    number = [(RULES["number"][1], False)]
    near = chunk_evidence("the cache holds 64 entries", number, idf, 2.0)
    assert near["at8"] and near["at8_s"]
    far = chunk_evidence("the cache " + "word " * 20 + "holds 64 entries", number, idf, 2.0)
    assert not far["at8"] and not far["at16"] and far["at32"]
    own = chunk_evidence("set 64 for the cache", number, {"64": 1.0, "cach": 1.0}, 2.0)
    assert not any(own.values())  # the question's own number is not its answer


def test_instructions_count_only_after_the_question_terms() -> None:
    idf, instruction = {"font": 2.0}, [(RULES["instruction"][1], True)]
    assert chunk_evidence("fonts are listed:\nrun fc-list", instruction, idf, 2.0)["at8"]
    assert not chunk_evidence("run fc-list\nto see the fonts", instruction, idf, 2.0)["at8"]


def test_every_family_holds_the_product_at_weight_zero() -> None:
    at = [SIGNALS.index(s) for s in SIGNALS if s.startswith("at")]
    for name, grid in families().items():
        assert (grid[:, at] == 0).all(axis=1).any(), name
    assert set(AT) <= set(SIGNALS) and np.array([len(g) for g in families().values()]).min() > 1
