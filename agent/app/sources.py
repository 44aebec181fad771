"""Sources under an answer: the stored PDF, the cited page as an image, safe Markdown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent._files import safe_file_name
from agent.chat.citations import MARKER_RE, marker_numbers
from agent.errors import AgentError
from agent.search.retrieval import Source

PAGE_IMAGE_WIDTH = 900


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


def render_page_png(pdf: Path | str, page: int, width: int = PAGE_IMAGE_WIDTH) -> bytes:
    """PNG of one page (1-based number) rendered with pypdfium2, `width` pixels wide."""
    import io

    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf))
    try:
        if not 1 <= page <= len(document):
            raise AgentError(f"Page {page} is not in {Path(pdf).name} ({len(document)} pages).")
        pdf_page = document[page - 1]
        scale = width / max(pdf_page.get_width(), 1.0)
        image = pdf_page.render(scale=scale).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        document.close()


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str) -> str:
    """Text shown literally inside Markdown (file names in source headers)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def source_anchor(key: str, number: int) -> str:
    """The HTML id of source `number` under the answer `key` (what a [n] link jumps to)."""
    return f"source-{safe_file_name(key, default='answer')}-{number}".replace(".", "-")


def link_citations(text: str, sources: list[Source], key: str) -> str:
    """Answer Markdown whose [n] markers link to their sources (file and page on hover); a marker
    that matches no excerpt is struck through, so it never reads as a citation."""
    by_number = {s["number"]: s for s in sources if "number" in s}

    def one(number: int) -> str:
        source = by_number.get(number)
        if source is None:
            return f"~~\\[{number}\\]~~"
        hover = f"{source.get('file', '')} p. {source.get('page', '')}".replace('"', "'")
        return f'[\\[{number}\\]](#{source_anchor(key, number)} "{hover}")'

    return MARKER_RE.sub(lambda m: "".join(one(n) for n in marker_numbers(m)), text)


def excerpt(text: str, limit: int = 700) -> str:
    """A source's text for display: whitespace runs folded, cut at `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def export_file_name(title: str, conversation_id: str) -> str:
    return safe_file_name(f"{title[:40] or 'conversation'}-{conversation_id}.md", default="conversation.md")
