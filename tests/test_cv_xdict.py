"""bench.cv_xdict: a question's words translated by a CC-CEDICT dictionary, weighed by their ambiguity."""

from __future__ import annotations

from bench.cv_xdict import parse, segment, translate

LINES = [
    "# CC-CEDICT comment line",
    "安裝 安装 [an1 zhuang1] /to install/to erect/",
    "更新 更新 [geng1 xin1] /to replace the old one with a brand new one/to renew/to update/",
    "升級 升级 [sheng1 ji2] /to go up by one grade/to upgrade/to update/",
    "圖形界面 图形界面 [tu2 xing2 jie4 mian4] /graphical interface/",
    "圖形 图形 [tu2 xing2] /figure; graph/CL:個|个[ge4]/",
    "界 界 [jie4] /boundary/",
]


def test_short_senses_map_both_ways_and_long_or_classifier_senses_do_not() -> None:
    d = parse(LINES)
    assert d.to_zh["updat"] == {"更新", "升级"}
    assert "instal" in d.to_en["安装"] and "界" not in d.to_en  # one character: too ambiguous
    assert not any(t.startswith("replac") for t in d.to_en["更新"])  # a sense of more than SHORT terms
    assert not any("ge4" in t or t == "cl" for t in d.to_en["图形"])


def test_chinese_is_cut_longest_word_first() -> None:
    d = parse(LINES)
    assert segment("tlmgr 有图形界面吗", d.to_en) == ["图形界面"]
    assert segment("安装并更新", d.to_en) == ["安装", "更新"]


def test_a_translation_weighs_one_over_the_number_of_senses() -> None:
    d = parse(LINES)
    en = translate("How do I update tlmgr?", d)
    assert en == {"更新": 0.5, "升级": 0.5}
    zh = translate("如何安装 TeX Live", d)
    assert zh == {"instal": 0.5, "erect": 0.5}
