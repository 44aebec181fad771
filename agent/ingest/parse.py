"""PDF parsing: a PDF file in, cleaned text per physical page out.

Pipeline (`parse_pdf`):

1. Cheap checks, each failing fast with a `DocumentError` (one-sentence `message`
   plus a `fix`): missing/empty file, too many bytes (checked with `stat`, before
   reading), not a PDF (no ``%PDF-`` in the first 1024 bytes; says what it looks
   like), encrypted (`EncryptedPDFError`), too many pages (the page count comes
   from the document's page tree, so a 10,000-page file is refused in milliseconds
   without touching its pages), and broken beyond repair.
2. Text per page with PDFium (pypdfium2: fast, and it decodes CJK fonts that pypdf
   turns into mojibake, e.g. lshort-zh-cn.pdf). If PDFium cannot open the file,
   pypdf's lenient (``strict=False``) reader is tried and a warning says the file
   was repaired; if PDFium fails on one page, pypdf reads that page.
3. Each page's raw text is checked by `is_garbled`; a garbled page is retried with
   pypdf, and if that is garbled too, it is OCR'd.
4. OCR (agent.ocr, RapidOCR) for pages that have no text layer but do draw
   something, that are garbled, or that are mostly an image with a few words.
   OCR costs seconds per page on a laptop CPU, so at most `max_ocr_pages` pages
   are OCR'd per file; the rest are reported in `warnings`.
5. `clean_text` normalises every page's text.

PDFium is not thread-safe (not even across documents), so every PDFium call in
the app must hold `PDFIUM_LOCK`; this module takes it per page, so parses in
several threads (Streamlit sessions) interleave page by page.
"""

from __future__ import annotations

import bisect
import functools
import mmap
import os
import re
import threading
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from agent.errors import DocumentError, EncryptedPDFError
from agent.ingest import ocr as ocr_mod

# Serialises all PDFium calls in the process (see module doc). Re-entrant so a
# caller that already holds it may call into this module.
PDFIUM_LOCK = threading.RLock()

DEFAULT_MAX_OCR_PAGES = 100
# Largest decompressed size of one Flate stream. PDFium inflates a page's content stream
# whole, with no limit, and holds about twice that in memory: a 1 MB file that inflates
# to 1 GB took 2 GB of RAM, so a 200 MB upload could take down the app (see
# `_check_inflation`). 256 MB is far beyond real content streams, fonts and even a
# 600 dpi A4 colour scan image (~100 MB).
MAX_INFLATED_STREAM = 256 * 1024 * 1024
# A page with fewer cleaned characters than this whose images cover at least
# MOSTLY_IMAGE of its area is treated as a scan with a stray text layer (a stamp,
# a page number) and OCR'd too; the OCR text is kept if it is longer.
FEW_CHARS = 100
MOSTLY_IMAGE = 0.5

Progress = Callable[[str, int, int], None]


@dataclass
class ParsedPage:
    number: int  # 1-based physical page index
    text: str  # cleaned text ("" if nothing usable)
    ocr: bool  # True if the text came from OCR


@dataclass
class ParsedPDF:
    pages: list[ParsedPage]
    page_count: int  # pages in the file (all of them, even when `pages=` chose a subset)
    ocr_pages: list[int] = field(default_factory=list)  # page numbers whose text came from OCR
    empty_pages: list[int] = field(default_factory=list)  # pages with no text even after OCR
    warnings: list[str] = field(default_factory=list)  # human-readable, one sentence each


# --------------------------------------------------------------------------- text cleaning

_CJK_RANGES = (
    "\u2e80-\u2fdf"  # CJK and Kangxi radicals
    "\u3001-\u303f"  # CJK punctuation (not U+3000 ideographic space)
    "\u3040-\u30ff"  # kana
    "\u3100-\u312f\u31a0-\u31ff"  # bopomofo
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # ideographs
    "\ufe30-\ufe4f"  # CJK compatibility forms
    "\uff01-\uff60\uff61-\uff9f"  # fullwidth / halfwidth forms
    "\U00020000-\U0003134f"
)
_CJK = f"[{_CJK_RANGES}]"
_CJK_CHAR = re.compile(_CJK)
_CJK_SPACE = re.compile(f"(?<={_CJK}) +(?={_CJK})")
# Lines ending in these end a sentence or introduce a block: never joined.
_CJK_FINAL = set("。！？：.!?:")
# Characters NFKC would change in a way that loses meaning or house style: fullwidth
# CJK punctuation (，→, ：→: ...), superscripts/subscripts (10² → 102).
_NFKC_KEEP = re.compile("([\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
                        "\u00b2\u00b3\u00b9\u2070-\u209f]+)")
_HSPACE = re.compile(r"[^\S\n]+")  # whitespace except newline
# The lookbehind anchors a match at the start of a word: without it, a long run of letters
# (a 100k-character line with no spaces) was rescanned from every position, O(n^2): 80 s.
_HYPHEN_BREAK = re.compile(r"(?<![A-Za-z\u00c0-\u024f])([A-Za-z\u00c0-\u024f]{2,})[-\u2010]\n([a-z\u00df-\u024f])")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_LEADER_DOTS = re.compile(r"(?: ?[.·]){5,}")  # table-of-contents leaders


def _class_of(predicate: Callable[[str], bool], extra: str = "") -> str:
    """A regex character class of every BMP code point matching `predicate`, plus `extra`."""
    ranges: list[str] = []
    start = None
    for code in range(0x10000 + 1):
        hit = code <= 0xFFFF and predicate(chr(code))
        if hit and start is None:
            start = code
        elif not hit and start is not None:
            ranges.append(re.escape(chr(start)) + ("" if code - 1 == start else "-" + re.escape(chr(code - 1))))
            start = None
    return "[" + "".join(ranges) + extra + "]"


# Dropped by clean_text: control (but \n, \t), format (but ZWNJ/ZWJ), private-use,
# surrogate, unassigned and replacement characters; astral private-use planes and tags.
_DROP = re.compile(_class_of(
    lambda c: c not in "\n\t\u200c\u200d" and (c == "\ufffd" or unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Cn")),
    "\U000e0000-\U000e007f\U000f0000-\U0010ffff"))
# Counted as junk by is_garbled (same, without format characters and tabs/newlines).
_JUNK = re.compile(_class_of(
    lambda c: not c.isspace() and (c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cs", "Cn")),
    "\U000f0000-\U0010ffff"))


def _nfkc_safe(text: str) -> str:
    if unicodedata.is_normalized("NFKC", text):
        return text
    parts = _NFKC_KEEP.split(text)
    # split() with a group alternates: [normalise, keep, normalise, keep, ...]
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _join_cjk_lines(text: str) -> str:
    """Remove line breaks that wrap a CJK sentence (a PDF's visual line ends).

    A break is removed only when CJK meets CJK across it, the line before it does not
    end a sentence, and that line is nearly as wide as the page's typical full line
    (widths estimated with CJK = 2 columns), so short lines -- headings, table cells,
    list items, the last line of a paragraph -- keep their break. A break between CJK
    and a Latin word is kept: it already reads as the space such text has there.
    """
    lines = text.split("\n")
    if len(lines) < 2 or not _CJK_CHAR.search(text):
        return text
    widths = [_width(line) for line in lines]
    body = sorted(w for w in widths if w >= 10)
    if not body:
        return text
    full = body[min(len(body) - 1, int(len(body) * 0.8))]
    threshold = max(24, 0.85 * full)
    out = [lines[0]]
    for prev_width, line in zip(widths, lines[1:]):
        prev = out[-1]
        if (prev and line and prev_width >= threshold and prev[-1] not in _CJK_FINAL
                and _CJK_CHAR.match(prev[-1]) and _CJK_CHAR.match(line[0])):
            out[-1] = prev + line
        else:
            out.append(line)
    return "\n".join(out)


def clean_text(text: str) -> str:
    """Normalise extracted or OCR'd page text for indexing and display.

    - line ends unified; PDFium's hyphenation marker (U+FFFE) and soft hyphens removed
      so the word is rejoined; ``infor-\\nmation`` → ``information``;
    - NFKC (ligatures, fullwidth letters/digits, Kangxi radicals → normal ideographs),
      except fullwidth CJK punctuation and super/subscripts, which it would corrupt;
    - control, format, private-use and unassigned characters dropped;
    - table-of-contents leader dots (``. . . . .``) shortened to `` ... ``;
    - runs of spaces/tabs collapsed to one space, lines stripped, at most one blank
      line in a row (a paragraph break);
    - CJK kept intact: no spaces between CJK characters, and line breaks that only
      wrap a Chinese sentence are removed (see `_join_cjk_lines`).
    """
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", "\n", text)
    text = re.sub("[\ufffe\u00ad][^\\S\n]*\n?", "", text)  # PDFium's / soft hyphen at a break
    text = _nfkc_safe(text)
    text = _DROP.sub("", text)
    text = _LEADER_DOTS.sub(" ... ", text)
    text = _HSPACE.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _CJK_SPACE.sub("", text)
    text = _join_cjk_lines(text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


# --------------------------------------------------------------------------- garbled text

# (start, script) boundaries for the scripts used to spot mojibake; anything not
# listed counts as "other". Latin, Greek and common punctuation are never "mixed".
_SCRIPT_STARTS: list[tuple[int, str]] = sorted([
    (0x0000, "latin"), (0x0370, "greek"), (0x0400, "cyrillic"), (0x0530, "armenian"),
    (0x0590, "hebrew"), (0x0600, "arabic"), (0x0700, "syriac"), (0x0750, "arabic"),
    (0x0780, "thaana"), (0x07C0, "nko"), (0x0800, "samaritan"), (0x0840, "mandaic"),
    (0x0860, "syriac"), (0x0870, "arabic"), (0x0900, "devanagari"), (0x0980, "bengali"),
    (0x0A00, "gurmukhi"), (0x0A80, "gujarati"), (0x0B00, "oriya"), (0x0B80, "tamil"),
    (0x0C00, "telugu"), (0x0C80, "kannada"), (0x0D00, "malayalam"), (0x0D80, "sinhala"),
    (0x0E00, "thai"), (0x0E80, "lao"), (0x0F00, "tibetan"), (0x1000, "myanmar"),
    (0x10A0, "georgian"), (0x1100, "hangul-jamo"), (0x1200, "ethiopic"), (0x13A0, "cherokee"),
    (0x1400, "canadian"), (0x1680, "ogham"), (0x16A0, "runic"), (0x1700, "philippine"),
    (0x1780, "khmer"), (0x1800, "mongolian"), (0x18B0, "canadian"), (0x1900, "limbu"),
    (0x1950, "tai"), (0x19E0, "khmer"), (0x1A00, "buginese"), (0x1AB0, "latin"),
    (0x1B00, "balinese"), (0x1B80, "sundanese"), (0x1BC0, "batak"), (0x1C00, "lepcha"),
    (0x1C50, "olchiki"), (0x1C80, "cyrillic"), (0x1C90, "georgian"), (0x1CC0, "sundanese"),
    (0x1CD0, "vedic"), (0x1D00, "latin"), (0x1F00, "greek"), (0x2000, "latin"),
    (0x2C00, "glagolitic"), (0x2C60, "latin"), (0x2C80, "coptic"), (0x2D00, "georgian"),
    (0x2D30, "tifinagh"), (0x2D80, "ethiopic"), (0x2DE0, "cyrillic"), (0x2E00, "latin"),
    (0x2E80, "cjk"), (0x3130, "hangul"), (0x3190, "cjk"), (0xA000, "yi"), (0xA4D0, "lisu"),
    (0xA500, "vai"), (0xA640, "cyrillic"), (0xA6A0, "bamum"), (0xA700, "latin"),
    (0xA800, "other"), (0xA960, "hangul"), (0xA980, "javanese"), (0xAA00, "cham"),
    (0xAB00, "ethiopic"), (0xAB30, "latin"), (0xAB70, "cherokee"), (0xABC0, "meetei"),
    (0xAC00, "hangul"), (0xD800, "other"), (0xF900, "cjk"), (0xFB00, "latin"),
    (0xFB1D, "hebrew"), (0xFB50, "arabic"), (0xFE00, "latin"), (0xFE30, "cjk"),
    (0xFE70, "arabic"), (0xFF00, "cjk"), (0xFFF0, "other"), (0x10000, "other"),
    (0x20000, "cjk"), (0x32000, "other"),
])
_SCRIPT_KEYS = [start for start, _ in _SCRIPT_STARTS]
_NEUTRAL_SCRIPTS = {"latin", "greek"}  # mixed into any script's words legitimately (x, ε, π)
_LATIN1_MOJIBAKE = re.compile("[\u00c0-\u00ff][\u0080-\u00bf\u2013-\u2122\u0152-\u0192\u02c6\u02dc]")
_LATIN1_RUN = re.compile("[\u00a1-\u00ff]{3,}")
_CID = re.compile(r"\(cid:\d+\)")
_LEADER_TABLE = str.maketrans("", "", ".·…-_=*~\u2014\u2013\u2500")
_WHITESPACE = re.compile(r"\s+")
# A character outside Latin, Greek and general punctuation/symbols.
_NON_LATIN = re.compile("[^\x00-\u03ff\u1e00-\u1fff\u2000-\u2bff]")


@functools.lru_cache(maxsize=8192)
def _script(ch: str) -> str:
    return _SCRIPT_STARTS[bisect.bisect_right(_SCRIPT_KEYS, ord(ch)) - 1][1]


def is_garbled(text: str) -> bool:
    """True if `text` looks like a broken text layer rather than real text.

    Heuristic (needs at least 20 non-space characters; shorter text is never judged):

    - junk glyphs: more than 30% private-use, replacement (U+FFFD), unassigned or
      control characters (fonts without a usable ToUnicode map);
    - script soup: of the letters outside Latin/Greek (at least 10), a quarter or
      more sit in "words" that mix two or more such scripts (e.g. Arabic + Lao +
      Myanmar + Hangul jamo in one word) -- what pypdf produces for CJK fonts it maps
      wrongly, as in lshort-zh-cn.pdf. Real text mixes at most Latin/Greek letters
      into another script's words; CJK ideographs, kana and hangul count as one;
    - Latin-1 mojibake: at least 20% of the characters are UTF-8/GBK bytes decoded as
      Latin-1/cp1252 (``Ã¤Â¸Â­``, ``ÖÐÎÄ``), or pdfminer-style ``(cid:123)`` codes;
    - almost no letters or digits: fewer than 25% of 50+ non-space characters (glyph
      codes mapped to punctuation), which a table of numbers or code never triggers.
    """
    compact = _WHITESPACE.sub("", text)
    n = len(compact)
    if n < 20:
        return False
    if len(_JUNK.findall(compact)) > 0.3 * n:
        return True
    exotic = 0  # letters outside Latin/Greek
    mixed = 0  # ... of which in words that mix two or more such scripts
    words = text.split() if _NON_LATIN.search(text) else []
    for word in words:
        if not _NON_LATIN.search(word):
            continue
        scripts = set()
        word_exotic = 0
        for c in word:
            if c.isalpha():
                script = _script(c)
                if script not in _NEUTRAL_SCRIPTS:
                    word_exotic += 1
                    scripts.add("cjk" if script == "hangul" else script)
        exotic += word_exotic
        if len(scripts) >= 2:
            mixed += word_exotic
    if exotic >= 10 and mixed >= 0.25 * exotic:
        return True
    bad = len(_CID.findall(text)) * 8 + 2 * len(_LATIN1_MOJIBAKE.findall(text))
    bad += sum(len(m) for m in _LATIN1_RUN.findall(text))
    if bad >= 0.2 * n:
        return True
    # Leaders and rules (". . . . 12", "-----") are legitimate runs of punctuation.
    rest = compact.translate(_LEADER_TABLE)
    alnum = sum(map(str.isalnum, rest))
    return len(rest) >= 50 and alnum < 0.25 * len(rest)


# --------------------------------------------------------------------------- opening

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive (a .docx, .xlsx, .pptx or .epub document is one)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document (.doc, .xls or .ppt)"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"AT&TFORM", "a DjVu document"),
]


def _looks_like(head: bytes) -> str:
    """What a non-PDF file's first bytes suggest, as a noun phrase."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "a HEIC image"
    lower = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lower.startswith((b"<!doctype html", b"<html")):
        return "an HTML web page (perhaps a download error page)"
    if lower.startswith(b"<?xml") or lower.startswith(b"<svg"):
        return "an XML/SVG file"
    try:
        sample = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is fine
        sample = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if sample and sum(1 for c in sample if c.isprintable() or c in "\r\n\t") >= 0.95 * len(sample):
        return "a plain-text file"
    return ""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _check_file(path: Path, max_bytes: int) -> None:
    """Existence, size and header checks (stat + 1 KiB read)."""
    name = path.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DocumentError(f"{name} was not found.", "Check the path and try again.") from None
    except OSError as exc:
        raise DocumentError(f"{name} could not be opened ({exc.strerror or exc}).",
                            "Check that the file exists and is readable.") from exc
    if path.is_dir():
        raise DocumentError(f"{name} is a folder, not a PDF file.", "Choose a PDF file inside it.")
    if size == 0:
        raise DocumentError(f"{name} is empty (0 bytes).",
                            "Re-download or re-export the PDF; the copy you have holds no data.")
    if size > max_bytes:
        raise DocumentError(f"{name} is {_mb(size)}, larger than the {_mb(max_bytes)} limit.",
                            "Split it into smaller PDFs, or raise the upload size limit in Settings.",
                            code="doc_too_large", params={"file": name, "size": _mb(size), "limit": _mb(max_bytes)})
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise DocumentError(f"{name} could not be read ({exc.strerror or exc}).",
                            "Check that the file is readable.") from exc
    if b"%PDF-" not in head:
        what = _looks_like(head)
        message = (f"{name} is not a PDF: it looks like {what}." if what
                   else f"{name} is not a PDF: it does not start with a PDF header.")
        raise DocumentError(message, "Convert it to PDF (or pick the right file) and add it again.")


def _encrypted_error(name: str, password: str | None) -> EncryptedPDFError:
    if password:
        return EncryptedPDFError(f"The password given for {name} is wrong.",
                                 "Check the password and supply the right one (e.g. --password).",
                                 code="doc_wrong_password", params={"file": name})
    return EncryptedPDFError(f"{name} is password-protected and needs a password to open.",
                             "Supply its password (e.g. --password), or add an unprotected copy.",
                             code="doc_encrypted", params={"file": name})


def _unreadable_error(name: str) -> DocumentError:
    return DocumentError(f"{name} could not be read as a PDF: the file is damaged beyond repair.",
                         "Open it in a PDF viewer and re-save or re-export it, then add it again.",
                         code="doc_damaged", params={"file": name})


_STREAM_KEYWORD = re.compile(rb"stream\r?\n")
_INFLATE_STEP = 1 << 20


def _check_inflation(path: Path, limit: int = MAX_INFLATED_STREAM) -> None:
    """Refuse a decompression bomb before any PDF library inflates it.

    Every stream's data follows a `stream` keyword in the raw file (streams are never
    inside object streams), so each zlib-looking one is inflated here in 1 MB steps
    that are counted and thrown away: memory stays flat and a bomb is stopped at
    `limit`. Costs about a second per GB inflated; other filters are skipped at once.
    """
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for match in _STREAM_KEYWORD.finditer(data):
            start = match.end()
            head = data[start:start + 2]
            if len(head) < 2 or head[0] & 0x0F != 8 or (head[0] << 8 | head[1]) % 31:
                continue  # not a zlib header: another filter, or no filter
            inflater = zlib.decompressobj()
            size, pos = 0, start
            try:
                while not inflater.eof and size <= limit:
                    chunk = inflater.unconsumed_tail or data[pos:pos + _INFLATE_STEP]
                    if not inflater.unconsumed_tail:
                        pos += _INFLATE_STEP
                    if not chunk:
                        break
                    size += len(inflater.decompress(chunk, _INFLATE_STEP))
            except zlib.error:
                continue  # damaged or not zlib after all: the PDF readers judge it
            if size > limit:
                raise DocumentError(
                    f"{path.name} holds a compressed stream that expands to more than {_mb(limit)} "
                    "(a decompression bomb?), so it was not opened.",
                    "If the file is genuine, re-export it (e.g. print it to PDF) and add it again.")


class _Source:
    """An opened PDF: PDFium when it can open the file, else pypdf's repair reader."""

    def __init__(self, path: Path, password: str | None) -> None:
        self.path = path
        self.name = path.name
        self.password = password or None
        self.pdfium = None
        self._pypdf = None
        self._pypdf_failed = False
        self.warnings: list[str] = []
        self.page_count = 0

    # pypdf is opened lazily: it is only needed for repairs and fallbacks.
    def pypdf(self):
        if self._pypdf is None and not self._pypdf_failed:
            try:
                self._pypdf = _open_pypdf(self.path, self.password, self.name)
            except DocumentError:
                self._pypdf_failed = True
        return self._pypdf

    def close(self) -> None:
        if self.pdfium is not None:
            with PDFIUM_LOCK:
                self.pdfium.close()
            self.pdfium = None
        self._pypdf = None


def _open_pypdf(path: Path, password: str | None, name: str):
    """pypdf in lenient mode (repairs broken xref tables); decrypts; raises DocumentError."""
    import pypdf
    from pypdf import PasswordType

    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                result = reader.decrypt(password or "")
            except Exception as exc:  # e.g. pypdf lacks the crypto library for AES
                if not password:
                    raise _encrypted_error(name, password) from exc
                raise DocumentError(f"{name} is encrypted in a way that could not be decrypted ({exc}).",
                                    "Save an unprotected copy of it and add that.") from exc
            if result == PasswordType.NOT_DECRYPTED:
                raise _encrypted_error(name, password)
        len(reader.pages)  # forces the page tree to be read
        return reader
    except DocumentError:
        raise
    except Exception as exc:
        raise _unreadable_error(name) from exc


def _open(path: str | os.PathLike, password: str | None, max_bytes: int, max_pages: int) -> _Source:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    path = Path(path)
    _check_file(path, max_bytes)
    _check_inflation(path)
    source = _Source(path, password)
    name = path.name
    try:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(str(path), password=source.password)
            source.pdfium = doc
            source.page_count = len(doc)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise _encrypted_error(name, password) from None
        reader = _open_pypdf(path, source.password, name)  # raises "damaged beyond repair"
        source._pypdf = reader
        source.page_count = len(reader.pages)
        source.warnings.append(f"{name} is damaged; it was repaired while reading, so some text may be missing.")
    if source.page_count == 0 and source.pdfium is not None:
        # PDFium found no pages: a damaged page tree? Ask pypdf for a second opinion.
        reader = source.pypdf()
        if reader is not None and len(reader.pages) > 0:
            source.close()
            source._pypdf = reader
            source.page_count = len(reader.pages)
            source.warnings.append(f"{name} is damaged; it was repaired while reading, so some text may be missing.")
    if source.page_count > max_pages:
        count = source.page_count
        source.close()
        raise DocumentError(f"{name} has {count:,} pages, more than the limit of {max_pages:,}.",
                            "Split it into smaller PDFs, or raise the page limit in Settings.",
                            code="doc_too_many_pages", params={"file": name, "pages": count, "limit": max_pages})
    if source.page_count == 0:
        source.close()
        raise DocumentError(f"{name} has no pages.", "Re-export the document to PDF and add it again.")
    return source


def inspect_pdf(path: str | os.PathLike, *, password: str | None = None, max_bytes: int, max_pages: int) -> int:
    """Run every check that `parse_pdf` runs before extracting text; return the page count.

    Cheap: reads the header, the cross-reference table and the page tree only.
    Raises DocumentError / EncryptedPDFError exactly as `parse_pdf` would.
    """
    source = _open(path, password, max_bytes, max_pages)
    try:
        return source.page_count
    finally:
        source.close()


# --------------------------------------------------------------------------- extraction


@dataclass
class _PageScan:
    number: int
    text: str = ""  # cleaned text kept if no OCR happens
    reason: str = ""  # why OCR is wanted: "", "empty", "garbled", "image"
    fallback: bool = False  # read by pypdf because PDFium failed
    failed: bool = False  # no reader could read it


def _pdfium_page_text(doc, index: int) -> tuple[str, int, float]:
    """Raw text, number of page objects, and fraction of the page covered by images."""
    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        page = doc[index]
        try:
            textpage = page.get_textpage()
            try:
                raw = textpage.get_text_range()
            finally:
                textpage.close()
            objects = pdfium_c.FPDFPage_CountObjects(page)
            coverage = 0.0
            if objects and len(raw.strip()) < 2 * FEW_CHARS:
                coverage = _image_coverage(page)
            return raw, objects, coverage
        finally:
            page.close()


def _image_coverage(page) -> float:
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    covered = 0.0
    for count, obj in enumerate(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4)):
        if count > 500:
            break
        left, bottom, right, top = obj.get_bounds()
        w = max(0.0, min(right, width) - max(left, 0.0))
        h = max(0.0, min(top, height) - max(bottom, 0.0))
        covered += w * h
    return min(1.0, covered / (width * height))


def _pypdf_page_text(source: _Source, index: int) -> str | None:
    reader = source.pypdf()
    if reader is None:
        return None
    try:
        return reader.pages[index].extract_text() or ""
    except Exception:
        return None


def _scan_page(source: _Source, index: int) -> _PageScan:
    """Extract and judge one page's text layer (no OCR yet)."""
    scan = _PageScan(number=index + 1)
    raw: str | None = None
    objects, coverage = 1, 0.0
    if source.pdfium is not None:
        try:
            raw, objects, coverage = _pdfium_page_text(source.pdfium, index)
        except Exception:
            raw = None
    if raw is None:
        raw = _pypdf_page_text(source, index)
        if raw is None:
            scan.failed = True
            scan.reason = "empty" if source.pdfium is not None else ""
            return scan
        scan.fallback = source.pdfium is not None
    if is_garbled(raw):
        # Another extractor may map the font correctly; it is cheap compared to OCR.
        other = _pypdf_page_text(source, index) if source.pdfium is not None and not scan.fallback else None
        if other is not None and not is_garbled(other) and clean_text(other):
            scan.text = clean_text(other)
            return scan
        scan.reason = "garbled"
        return scan
    scan.text = clean_text(raw)
    if not scan.text:
        scan.reason = "empty" if objects else ""
    elif len(scan.text) < FEW_CHARS and coverage >= MOSTLY_IMAGE:
        scan.reason = "image"
    return scan


def _render_for_ocr(source: _Source, index: int):
    with PDFIUM_LOCK:
        page = source.pdfium[index]
        try:
            width, height = page.get_size()
            scale = ocr_mod.render_scale(width, height)
            bitmap = page.render(scale=scale, grayscale=True, rotation=0)
            try:
                return bitmap.to_pil().convert("RGB")  # a copy: the bitmap's buffer is freed below
            finally:
                bitmap.close()
        finally:
            page.close()


def _ranges(numbers: list[int], limit: int = 12) -> str:
    """[1,2,3,7,9,10] -> '1-3, 7, 9-10' (at most `limit` items, then '...')."""
    parts: list[str] = []
    start = prev = None
    for n in sorted(numbers):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    if len(parts) > limit:
        parts = parts[:limit] + ["..."]
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def parse_pdf(
    path: str | os.PathLike,
    *,
    password: str | None = None,
    max_bytes: int,
    max_pages: int,
    ocr: bool = True,
    progress: Progress | None = None,
    pages: Iterable[int] | None = None,
    max_ocr_pages: int = DEFAULT_MAX_OCR_PAGES,
) -> ParsedPDF:
    """Extract cleaned text per physical page, OCR'ing pages without usable text.

    `pages` (1-based numbers) restricts the work to a subset (tests, previews);
    `page_count` is still the file's. `max_ocr_pages` bounds OCR per call (OCR costs
    seconds per page on CPU); pages beyond it stay empty and a warning says so.
    `progress(stage, done, total)` is called with stage "parse" then "ocr": once with
    done=0 when a stage starts and after every page; an exception it raises (e.g. to
    cancel) propagates. Raises DocumentError / EncryptedPDFError with a fix.
    """
    source = _open(path, password, max_bytes, max_pages)
    name = source.name
    try:
        if pages is None:
            indices = list(range(source.page_count))
        else:
            wanted = sorted(set(int(p) for p in pages))
            bad = [p for p in wanted if not 1 <= p <= source.page_count]
            if not wanted:
                raise ValueError("pages is empty")
            if bad:
                raise ValueError(f"pages {bad} are outside 1..{source.page_count}")
            indices = [p - 1 for p in wanted]
        warnings = list(source.warnings)

        # Pass 1: text layers.
        scans: list[_PageScan] = []
        if progress:
            progress("parse", 0, len(indices))
        for done, index in enumerate(indices, 1):
            scans.append(_scan_page(source, index))
            if progress:
                progress("parse", done, len(indices))

        fallback = [s.number for s in scans if s.fallback]
        if fallback:
            warnings.append(f"{_plural(len(fallback), 'page')} could not be read by the main PDF reader and "
                            f"{_were(len(fallback))} read by the fallback reader: {_ranges(fallback)}.")
        failed = [s.number for s in scans if s.failed]
        if failed:
            warnings.append(f"{_plural(len(failed), 'page')} could not be read at all and {_were(len(failed))} "
                            f"left empty: {_ranges(failed)}.")

        # Pass 2: OCR.
        wanted = [s for s in scans if s.reason]
        ocr_done: set[int] = set()
        ocr_error = None
        if wanted and source.pdfium is None:
            ocr_error = "the file could only be read by the repair reader, which cannot render pages"
        elif wanted and ocr:
            try:
                ocr_mod.get_engine()
            except ocr_mod.OCRUnavailable as exc:
                ocr_error = f"the OCR engine could not be loaded ({exc})"
        todo = wanted[:max(0, max_ocr_pages)] if ocr and ocr_error is None else []
        attempted: set[int] = set()
        if todo:
            if progress:
                progress("ocr", 0, len(todo))
            page_errors: list[int] = []
            for done, scan in enumerate(todo, 1):
                try:
                    image = _render_for_ocr(source, scan.number - 1)
                    text = clean_text(ocr_mod.ocr_image(image))
                except ocr_mod.OCRUnavailable as exc:
                    ocr_error = f"the OCR engine could not be loaded ({exc})"
                    break
                except Exception:
                    page_errors.append(scan.number)
                    text = ""
                attempted.add(scan.number)
                if scan.reason == "image":
                    if len(text) > len(scan.text):
                        scan.text = text
                        ocr_done.add(scan.number)
                else:
                    scan.text = text
                    if text:
                        ocr_done.add(scan.number)
                if progress:
                    progress("ocr", done, len(todo))
            if page_errors:
                warnings.append(f"OCR failed on {_plural(len(page_errors), 'page')}: {_ranges(page_errors)}.")

        skipped = [s.number for s in wanted if s.number not in attempted and s.reason != "image"]
        garbled = [s.number for s in wanted if s.reason == "garbled"]
        if not ocr and skipped:
            warnings.append(f"OCR is off, so {_plural(len(skipped), 'page')} without usable text (scanned or "
                            f"garbled) {_were(len(skipped))} left empty: {_ranges(skipped)}.")
        elif ocr_error and skipped:
            warnings.append(f"OCR unavailable: {ocr_error}, so {_plural(len(skipped), 'page')} without usable "
                            f"text {_were(len(skipped))} left empty: {_ranges(skipped)}.")
        elif skipped:
            warnings.append(f"OCR is limited to {max_ocr_pages} pages per file; {_plural(len(skipped), 'more page')} "
                            f"without usable text {_were(len(skipped))} left empty: {_ranges(skipped)}.")
        garbled_ocr = [n for n in garbled if n in ocr_done]
        if garbled_ocr:
            warnings.append(f"{_plural(len(garbled_ocr), 'page')} had a garbled text layer and "
                            f"{_were(len(garbled_ocr))} read with OCR instead: {_ranges(garbled_ocr)}.")

        result = ParsedPDF(
            pages=[ParsedPage(number=s.number, text=s.text, ocr=s.number in ocr_done) for s in scans],
            page_count=source.page_count,
            ocr_pages=sorted(ocr_done),
            empty_pages=[s.number for s in scans if not s.text],
            warnings=warnings,
        )
        if all(not p.text for p in result.pages):
            raise _no_text_error(name, scans, ocr, ocr_error, bool(attempted))
        return result
    finally:
        source.close()


def _no_text_error(name: str, scans: list[_PageScan], ocr: bool, ocr_error: str | None,
                   ocr_ran: bool) -> DocumentError:
    if not any(s.reason for s in scans):
        return DocumentError(f"{name} has no extractable text: its pages are blank.",
                             "Check that this is the right file.", code="doc_blank", params={"file": name})
    if not ocr:
        return DocumentError(f"{name} has no extractable text (scanned PDF?).",
                             "Turn OCR on (the ocr setting) so scanned pages are read as images.",
                             code="doc_scanned_no_ocr", params={"file": name})
    if ocr_error:
        return DocumentError(f"{name} has no extractable text (scanned PDF?) and OCR is unavailable.",
                             f"Fix OCR ({ocr_error}): reinstall rapidocr-onnxruntime from requirements.txt.")
    if ocr_ran:
        return DocumentError(f"{name} has no extractable text (scanned PDF?), and OCR found none either.",
                             "Check that the pages hold legible text; a cleaner, higher-resolution scan may help.")
    return DocumentError(f"{name} has no extractable text (scanned PDF?).",
                         "Raise max_ocr_pages so its scanned pages are OCR'd.")
