"""bench.cv_xlang: a page's language by its share of CJK ideographs, and which pages a question's language misses."""

from __future__ import annotations

import numpy as np

from bench.cv_xlang import cross_pages, is_zh


def test_page_language_by_its_share_of_ideographs() -> None:
    assert is_zh("tlmgr 是 TeX Live 的包管理器，可以安装和更新宏包。")
    assert not is_zh("Run tlmgr update --self to update the manager itself (更新).")
    assert not is_zh("12 34 ...")


def test_pages_in_the_other_language_than_the_question() -> None:
    pages = np.array([True, False, False])
    assert cross_pages(pages, "How do I update tlmgr?").tolist() == [1.0, 0.0, 0.0]
    assert cross_pages(pages, "如何更新 tlmgr？").tolist() == [0.0, 1.0, 1.0]
