"""HTML: text per heading section with the standard library's tokenizer, which never runs or fetches anything."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from agent.ingest.formats._section import Section, first_paragraph
from agent.ingest.formats.text import decode

_SKIP = {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math", "head"}
_BLOCK = {"p", "div", "li", "tr", "section", "article", "blockquote", "pre", "table", "ul", "ol", "dd", "dt"}
_SPACE = re.compile(r"\s+")
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.pre = 0  # inside <pre>: its line breaks are the text's
        self.level = 0  # inside a heading tag of this level
        self.title: list[str] = []
        self.path: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []  # (heading path, text)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _HEADINGS and not self.skip:
            self.flush()
            self.level, self.title = _HEADINGS[tag], []
        elif tag == "br":  # a line break inside a block keeps it one paragraph (as in DOCX), except in <pre>
            self.parts.append("\n" if self.pre else " ")
        elif tag in _BLOCK:
            self.pre += tag == "pre"
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.parts.append("\n")
        elif tag in _HEADINGS and self.level:
            title = " ".join("".join(self.title).split())
            self.path = [p for p in self.path if p[0] < self.level] + [(self.level, title)]
            self.parts.append(title + "\n")
            self.level = 0
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if not self.pre:  # source line breaks are spaces in HTML: a paragraph is a block, not a source line
            data = _SPACE.sub(" ", data)
        (self.title if self.level else self.parts).append(data)

    def flush(self) -> None:
        body = "\n".join(" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        self.sections.append((" > ".join(t for _, t in self.path), body))
        self.parts = []


def read(data: bytes) -> list[Section]:
    """Sections cut at <h1>..<h6>; script, style, iframe and embedded objects are dropped unread."""
    return read_text(decode(data))


def read_text(markup: str) -> list[Section]:
    """Sections of an already decoded HTML document (EPUB chapters come in this way); each block
    (paragraph, list item, table row; each line of a <pre>) is one numbered paragraph of its heading."""
    collector = _Collector()
    collector.feed(markup)
    collector.close()
    collector.flush()
    out: list[Section] = []
    for heading, body in collector.sections:
        body = "\n".join(l for l in body.split("\n") if l.strip())
        if body:
            title = heading.rsplit(" > ", 1)[-1]
            out.append(Section(len(out) + 1, body, "section", heading=heading,
                               para_first=first_paragraph(body, title)))
    return out
