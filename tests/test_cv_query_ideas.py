"""The query-side ideas of bench/README 4m: which terms each one adds to a question."""

from __future__ import annotations

import pytest

from agent.search.translation import Dictionary
from bench.cv_compound import variants
from bench.cv_pivot import round_trip


def test_compound_variants_join_content_words_and_drop_hyphens_when_the_pages_know_them() -> None:
    known = {"devicelink", "doi", "commandlin", "profil"}
    assert variants("How do I use a device link profile?", known) == ["devicelink"]  # "do I" is no variant
    assert variants("What command-line options?", known) == ["commandlin"]
    assert variants("How do I use a device link profile?", {"doi"}) == []  # unknown to the pages: nothing


def test_a_round_trip_brings_back_the_other_words_of_the_same_sense_weighed_by_ambiguity() -> None:
    d = Dictionary(to_zh={"pronounc": "发音 读", "debian": ""},
                   to_en={"发音": "pronounc pronunci", "读": "read pronounc"})
    terms = round_trip("How do you pronounce Debian?", d)
    assert set(terms) == {"pronunci", "read"}  # the question's own term is left out
    assert terms["pronunci"] == pytest.approx(0.25) and terms["read"] == pytest.approx(0.25)  # 1/2 words x 1/2 terms
