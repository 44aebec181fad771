"""EPUB: the spine's XHTML chapters in reading order, each read by the HTML reader."""
from __future__ import annotations

import posixpath
import zipfile

from lxml import etree

from agent.errors import DocumentError
from agent.ingest.formats import html
from agent.ingest.formats._section import Section

# No DTDs, no entities, no network: a hostile package cannot expand or fetch anything.
_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container", "o": "http://www.idpf.org/2007/opf"}


def _xml(archive: zipfile.ZipFile, member: str) -> etree._Element:
    try:
        return etree.fromstring(archive.read(member), _XML)
    except (KeyError, etree.XMLSyntaxError):
        raise DocumentError(f"The EPUB's {member} is missing or malformed.", "Re-export the book and upload again.") from None


def _spine(archive: zipfile.ZipFile) -> list[str]:
    container = _xml(archive, "META-INF/container.xml")
    rootfile = container.find(".//c:rootfile", _NS)
    if rootfile is None or not rootfile.get("full-path"):
        raise DocumentError("The EPUB names no package file.", "Re-export the book and upload again.")
    opf_path = rootfile.get("full-path")
    opf = _xml(archive, opf_path)
    base = posixpath.dirname(opf_path)
    items = {i.get("id"): i.get("href", "") for i in opf.iterfind(".//o:manifest/o:item", _NS)}
    hrefs = [items.get(ref.get("idref"), "") for ref in opf.iterfind(".//o:spine/o:itemref", _NS)]
    return [posixpath.normpath(posixpath.join(base, h)) for h in hrefs if h]


def read(archive: zipfile.ZipFile) -> list[Section]:
    """Sections of every chapter, numbered through the book; headings come from the chapters' <h1>..<h6>."""
    sections: list[Section] = []
    for member in _spine(archive):
        try:
            markup = archive.read(member).decode("utf-8", errors="replace")
        except KeyError:
            continue  # a spine entry without its file: skip the chapter, keep the book
        for section in html.read_text(markup):
            section.number = len(sections) + 1
            sections.append(section)
    return sections
