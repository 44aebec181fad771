"""The unit every format reader yields: one location (lines, section) that chunks never cross."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Section:
    number: int  # 1-based order in the document (stands where a PDF page number stands)
    text: str
    loc_kind: str  # "section" | "lines" | "slide"
    heading: str = ""  # heading path, " > "-joined, for "section"
    line_start: int = 0  # for "lines": 1-based, inclusive
    line_end: int = 0
    ocr: bool = False
