"""Plain text: decoded (BOM, UTF-8, GB18030) and cut into line ranges at blank lines."""
from __future__ import annotations

import codecs

from agent.errors import DocumentError
from agent.ingest.formats._section import Section

LINES_PER_SECTION = 60
MAX_LINE = 20_000  # a one-line 50 MB file is cut into pieces of this many characters


def decode(data: bytes) -> str:
    """Text of a file: BOM first, then strict UTF-8, then GB18030 (a superset of GBK); else refused."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _strict(data[len(bom):], codec)
    for codec in ("utf-8", "gb18030"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise _undecodable()


def _strict(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise _undecodable() from None


def _undecodable() -> DocumentError:
    return DocumentError("The text file's encoding is not recognised.",
                         "Save it as UTF-8 (or UTF-16 with BOM, GB18030) and upload again.")


def _lines(text: str) -> list[str]:
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n").split("\n"):
        out.extend(line[i:i + MAX_LINE] for i in range(0, max(len(line), 1), MAX_LINE))
    return out


def read(data: bytes) -> list[Section]:
    """Sections of about LINES_PER_SECTION lines, ending at a blank line where one is near."""
    lines = _lines(decode(data))
    sections: list[Section] = []
    start = 0
    while start < len(lines):
        end = min(start + LINES_PER_SECTION, len(lines))
        blank = next((i for i in range(end - 1, start + LINES_PER_SECTION // 2, -1) if not lines[i].strip()), None)
        if end < len(lines) and blank is not None:
            end = blank + 1
        body = "\n".join(lines[start:end])
        sections.append(Section(len(sections) + 1, body, "lines", line_start=start + 1, line_end=end))
        start = end
    return sections
