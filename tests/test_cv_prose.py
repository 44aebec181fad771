"""bench.cv_prose: which lines count as code, and which passages repeat an earlier page."""

from __future__ import annotations

import numpy as np
import pytest

from agent.search.tokens import tokenize
from bench.cv_prose import (
    _INDEX_LINE,
    _LISTING_LINE,
    CodeTerms,
    code_line,
    code_share,
    dup_share,
    line_share,
    names_identifier,
)


@pytest.mark.parametrize("line", ["cmsBool cmsIsTag(cmsHPROFILE hProfile, cmsTagSignature sig);",
                                  "#define LCMS_USED_AS_INPUT 0", ".pdfinfo /Title PDF Document",
                                  "xaxis(\"$x$\",BottomTop,LeftTicks)", "}"])
def test_listing_lines_are_code(line: str) -> None:
    assert code_line(line)


@pytest.mark.parametrize("line", ["cmsHPROFILE identifies a handle to an open profile.",
                                  "The function does return TRUE if intent is supported or FALSE if not.",
                                  "Asymptote 是一种为了绘制技术图形而设计的矢量图语言"])
def test_prose_lines_are_not_code(line: str) -> None:
    assert not code_line(line)


def test_code_share_counts_number_lines_only_when_asked() -> None:
    page = "A sentence of prose here.\nint f(void);\n-50 0 50\n\n"
    assert code_share(page, numbers=False) == pytest.approx(1 / 3)
    assert code_share(page, numbers=True) == pytest.approx(2 / 3)


def test_question_naming_an_identifier() -> None:
    assert names_identifier("What does cmsIsTag return?")
    assert names_identifier("What is LCMS_USED_AS_INPUT for?")
    assert not names_identifier("How do I use a device link profile?")


def test_query_words_in_code_lines_share_by_idf() -> None:
    terms = CodeTerms(["profile handle explained in prose", "open(profile);\nprofile in prose"])
    (term,) = tokenize("profile")  # the index term (stemmed), as query_terms gives it
    share = terms.share({term: 1.0})
    assert share[0] == 0.0 and share[1] == pytest.approx(0.5)


def test_only_the_later_copy_of_a_passage_counts_as_repeated() -> None:
    passage = "a groff command of the form groff -Tps -m pdfmark builds the file"
    texts = [passage + " first", "unrelated words on this other page entirely here", passage + " again"]
    dup = dup_share(texts, ["m.pdf", "m.pdf", "m.pdf"], [0, 1, 2])
    assert dup[0] == 0.0 and dup[1] == 0.0 and dup[2] > 0.5
    other_file = dup_share(texts, ["a.pdf", "b.pdf", "c.pdf"], [0, 1, 2])
    assert np.all(other_file == 0.0)


def test_index_and_listing_lines() -> None:
    page = "longtable, 24, 29\n\\cite, 26, 28\n帧, 45\nCopyright 21\nAxes ... 103\nPlain prose, with a comma.\n"
    assert line_share(page, _INDEX_LINE) == pytest.approx(3 / 6)
    assert line_share(page, _LISTING_LINE) == pytest.approx(5 / 6)
    assert line_share("In 1999 there were, as said, many\n\n", _INDEX_LINE) == 0.0
