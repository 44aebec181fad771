"""Spaces the OCR model lost between English words are restored; technical names and other text are left alone."""

from __future__ import annotations

import pytest

from agent.ingest import ocr
from agent.ingest.ocr_spacing import respace, split_word


@pytest.mark.parametrize("run_on, spaced", [
    ("cannotbereached", "can not be reached"),
    ("indicatedmeansofcommunication", "indicated means of communication"),
    ("theWork", "the Work"),  # case kept, piece by piece
    ("Severaldifferentpackagesareavailableforthispurpose", "Several different packages are available for this purpose"),
    ("aperiod", "a period"),
])
def test_common_words_run_together_are_split(run_on: str, spaced: str) -> None:
    assert split_word(run_on) == spaced


@pytest.mark.parametrize("word", [
    "maintained", "subdirectories",  # known words
    "fontconfig", "pdflatex", "kpsewhich",  # a piece is rare
    "monospace", "stacktrace", "rejectfont", "filesystem",  # common words, but compounds: no function word
    "Andal",  # too short
])
def test_words_and_technical_names_stay_whole(word: str) -> None:
    assert split_word(word) == word


def test_respace_touches_only_run_on_letters() -> None:
    text = "bzip2recover -v --help\n使用 thefile 命令 (see §3.1, p. 12)\nofDebian"
    assert respace(text) == "bzip2recover -v --help\n使用 the file 命令 (see §3.1, p. 12)\nof Debian"


class _Engine:
    """A RapidOCR stand-in: one line of text, as the model might run it together."""

    def __call__(self, image):
        class Out:
            boxes = [[[0, 0], [500, 0], [500, 30], [0, 30]]]
            txts = ["Set theprinter correctly"]
            scores = [0.95]
        return Out()


def test_an_ocr_page_is_read_with_its_spaces_restored() -> None:
    assert ocr.recognise(_Engine(), None) == "Set theprinter correctly"
    assert ocr.read_page(_Engine(), None) == "Set the printer correctly"
