"""OCR for PDF pages without a usable text layer (scans, or garbled fonts).

The engine is RapidOCR (PP-OCRv4 Chinese+English models as ONNX); its models ship
inside the `rapidocr-onnxruntime` wheel, so nothing is downloaded at run time. The
engine is loaded lazily, once per process, and shared by all threads; recognition
runs one page at a time (onnxruntime already uses every core, so running pages in
parallel would not be faster, only use more memory).

If the engine cannot be imported or loaded (package missing, or opencv failing to
find a system library such as libGL), `OCRUnavailable` is raised with the reason;
the parser turns that into a warning and keeps the page empty rather than failing.

Rendering is done by the caller (agent.parse) because PDFium is not thread-safe and
its calls must hold `agent.ingest._pdf_open.PDFIUM_LOCK`; this module only sees PIL images.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from PIL import Image

from agent._cjk import is_cjk

# Render resolution for OCR: lower loses the spaces between English words. The longest side
# is capped so an oversized page (A3, poster) does not blow up memory.
OCR_DPI = 200
MAX_SIDE_PX = 3000
# Engine settings: detection runs on a copy shrunk to 1600 px (boxes are mapped back),
# recognition reads the crops at full resolution. RapidOCR's default instead shrinks
# the whole page to 2000 px first, which costs the recognition its resolution.
ENGINE_KWARGS = {"max_side_len": 4000, "det_limit_type": "max", "det_limit_side_len": 1600}
# use_cls=False: rendered PDF pages are upright; the 0/180 degree classifier
# costs ~20% more time and, on upright text, flips a few lines the wrong way.
CALL_KWARGS = {"use_cls": False}
# Recognised lines scoring below this are dropped (RapidOCR's own default).
MIN_SCORE = 0.5

_engine: Any = None
_engine_error: str | None = None
_load_lock = threading.Lock()
_run_lock = threading.Lock()


class OCRUnavailable(RuntimeError):
    """The OCR engine cannot be used in this process; `str()` says why."""


def get_engine() -> Any:
    """Return the shared RapidOCR engine, loading it on first use (thread-safe).

    A failure is remembered so that a document with many scanned pages does not
    retry (and log) the same failure for every page.
    """
    global _engine, _engine_error
    if _engine is not None:
        return _engine
    with _load_lock:
        if _engine is not None:
            return _engine
        if _engine_error is not None:
            raise OCRUnavailable(_engine_error)
        try:
            from rapidocr_onnxruntime import (
                RapidOCR,  # heavy import: onnxruntime + opencv
            )

            _engine = RapidOCR(**ENGINE_KWARGS)
        except Exception as exc:  # ImportError, OSError (libGL), onnxruntime errors...
            _engine_error = f"{type(exc).__name__}: {exc}"
            raise OCRUnavailable(_engine_error) from exc
        return _engine


def available() -> bool:
    """True when the OCR engine can be loaded (loads it if needed)."""
    try:
        get_engine()
    except OCRUnavailable:
        return False
    return True


def render_scale(width_pt: float, height_pt: float, dpi: int = OCR_DPI, max_side: int = MAX_SIDE_PX) -> float:
    """PDFium render scale (pixels per point) for OCR: `dpi`, capped so the longest side <= max_side."""
    scale = dpi / 72.0
    longest = max(width_pt, height_pt, 1.0)
    return min(scale, max_side / longest)


def ocr_image(image: Image.Image) -> str:
    """Recognise the text in `image`; return lines in reading order ("" if none).

    Raises OCRUnavailable when the engine cannot be loaded.
    """
    engine = get_engine()
    if image.mode != "RGB":
        image = image.convert("RGB")
    with _run_lock:
        result, _elapsed = engine(image, **CALL_KWARGS)
    return lines_to_text(result or [])


def _join_words(left: str, right: str) -> str:
    if not left:
        return right
    if not right:
        return left
    if is_cjk(left[-1]) and is_cjk(right[0]):
        return left + right
    return f"{left} {right}"


def lines_to_text(result: Sequence[Sequence[Any]], min_score: float = MIN_SCORE) -> str:
    """Turn RapidOCR results `[[box, text, score], ...]` into text in reading order.

    Boxes are sorted by top then left; boxes that overlap vertically by at least half
    the smaller box's height are one line, joined left to right with a space (no space
    between two CJK characters). Lines are joined with newlines. Pure function.
    """
    items = []
    for entry in result:
        try:
            box, text, score = entry[0], str(entry[1]), float(entry[2])
        except (IndexError, TypeError, ValueError):
            continue
        text = text.strip()
        if not text or score < min_score:
            continue
        ys = [float(p[1]) for p in box]
        xs = [float(p[0]) for p in box]
        items.append((min(ys), max(ys), min(xs), text))
    items.sort(key=lambda it: (it[0], it[2]))

    lines: list[list[tuple[float, float, float, str]]] = []
    for item in items:
        top, bottom = item[0], item[1]
        if lines:
            current = lines[-1]
            line_top = min(it[0] for it in current)
            line_bottom = max(it[1] for it in current)
            overlap = min(bottom, line_bottom) - max(top, line_top)
            smaller = min(bottom - top, line_bottom - line_top)
            if smaller > 0 and overlap >= 0.5 * smaller:
                current.append(item)
                continue
        lines.append([item])

    out = []
    for line in lines:
        text = ""
        for item in sorted(line, key=lambda it: it[2]):
            text = _join_words(text, item[3])
        out.append(text)
    return "\n".join(out)
