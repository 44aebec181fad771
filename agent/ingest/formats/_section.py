"""The unit every format reader yields: one location (lines, section) that chunks never cross."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Section:
    number: int  # 1-based order in the document (stands where a PDF page number stands)
    text: str
    loc_kind: str  # "section" | "lines" | "slide" | "image"
    heading: str = ""  # heading path, " > "-joined, for "section"
    line_start: int = 0  # for "lines": 1-based, inclusive
    line_end: int = 0
    ocr: bool = False
    # Paragraph number (within the heading) of the text's first line: 0 when that line is the heading's
    # title, 1 for text before any heading; None where paragraphs are not counted (lines, slides).
    para_first: int | None = None


def first_paragraph(text: str, title: str) -> int:
    """`Section.para_first` for a heading section whose text may open with its own title line."""
    return 0 if title and text.split("\n", 1)[0].strip() == title.strip() else 1
