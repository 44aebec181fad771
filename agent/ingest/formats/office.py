"""DOCX (python-docx: sections per heading) and PPTX (python-pptx: one section per slide)."""
from __future__ import annotations

import io

import docx
import pptx
from docx.table import Table

from agent.ingest.formats._section import Section, first_paragraph


def _heading_level(style_name: str) -> int:
    """1.. for "Title"/"Heading N" paragraph styles, 0 for body text."""
    if style_name == "Title":
        return 1
    tail = style_name.removeprefix("Heading ")
    return int(tail) if tail != style_name and tail.isdigit() else 0


def _table_text(table: Table) -> str:
    return "\n".join(" | ".join(c.text.strip() for c in row.cells) for row in table.rows)


def read_docx(data: bytes) -> list[Section]:
    """Sections cut at heading paragraphs, their paragraphs numbered within the heading (Section.para_first)."""
    document = docx.Document(io.BytesIO(data))
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    body: list[str] = []

    def flush() -> None:
        text = "\n".join(b for b in body if b.strip())
        if text:
            title = path[-1][1] if path else ""
            sections.append(Section(len(sections) + 1, text, "section", heading=" > ".join(t for _, t in path),
                                    para_first=first_paragraph(text, title)))
        body.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            body.append(_table_text(block))
            continue
        level = _heading_level(block.style.name if block.style is not None else "")
        if level and block.text.strip():
            flush()
            path = [p for p in path if p[0] < level] + [(level, block.text.strip())]
        body.append(" ".join(block.text.split("\n")))  # a line break inside a paragraph keeps it one paragraph
    flush()
    return sections


def read_pptx(data: bytes) -> list[Section]:
    """One section per slide (number = slide number): titles, text boxes, tables and speaker notes."""
    deck = pptx.Presentation(io.BytesIO(data))
    sections: list[Section] = []
    for number, slide in enumerate(deck.slides, start=1):
        parts: list[str] = []
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            elif getattr(shape, "has_table", False) and shape.has_table:
                parts.extend(" | ".join(c.text for c in row.cells) for row in shape.table.rows)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
        title = slide.shapes.title.text.strip() if slide.shapes.title is not None else ""
        sections.append(Section(number, "\n".join(p for p in parts if p.strip()), "slide", heading=title))
    return sections
