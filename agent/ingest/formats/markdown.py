"""Markdown: one section per heading, parsed with markdown-it-py (its token map gives the lines)."""
from __future__ import annotations

from markdown_it import MarkdownIt

from agent.ingest.formats._section import Section
from agent.ingest.formats.text import decode

_PARSER = MarkdownIt("commonmark")


def read(data: bytes) -> list[Section]:
    """Sections cut at headings; each carries the heading path (# > ## > ###)."""
    source = decode(data)
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    tokens = _PARSER.parse(source)
    cuts: list[tuple[int, int, str]] = []  # (line, level, title)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            cuts.append((tok.map[0], int(tok.tag[1]), tokens[i + 1].content.strip()))
    bounds = [(0, 0, "")] + cuts
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    for n, (line, level, title) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        while end > line and not lines[end - 1].strip():  # the range ends at the section's last written line
            end -= 1
        if level:
            path = [p for p in path if p[0] < level] + [(level, title)]
        body = "\n".join(lines[line:end]).strip()
        if body:
            sections.append(Section(len(sections) + 1, body, "section",
                                    heading=" > ".join(t for _, t in path),
                                    line_start=line + 1, line_end=end))
    return sections
