"""OCR for PDF pages without a usable text layer (scans, or garbled fonts).

The engine is RapidOCR 3 running the PP-OCRv4 Chinese+English models (ONNX) on OpenVINO,
which reads them faster than onnxruntime on a CPU. The models ship inside the
`rapidocr-onnxruntime` wheel (RapidOCR 3's own wheel holds only PP-OCRv6 small, which is
slower here) and are named by path, so nothing is downloaded at run time.
The engines are loaded lazily, once per process: `WORKERS` of them, each on one thread,
shared by all threads of the process, so up to `WORKERS` pages are read at once (one page
on two threads spends much of its time waiting for the slower thread at every step, badly
so when other work shares the cores).

If the engine cannot be imported or loaded (package missing, or opencv failing to
find a system library such as libGL), `OCRUnavailable` is raised with the reason;
the parser turns that into a warning and keeps the page empty rather than failing.

Rendering is done by the caller (agent.parse) because PDFium is not thread-safe and
its calls must hold `agent.ingest._pdf_open.PDFIUM_LOCK`; this module only sees PIL images.
"""

from __future__ import annotations

import importlib.util
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
from PIL import Image

from agent._cjk import is_cjk
from agent.ingest.ocr_spacing import respace

# Render resolution for OCR: lower loses the spaces between English words. The longest side
# is capped so an oversized page (A3, poster) does not blow up memory.
OCR_DPI = 200
MAX_SIDE_PX = 3000
# The models: (package whose wheel holds them in its models/ folder, file name).
DET_MODEL = ("rapidocr_onnxruntime", "ch_PP-OCRv4_det_infer.onnx")
REC_MODEL = ("rapidocr_onnxruntime", "ch_PP-OCRv4_rec_infer.onnx")
# Engine settings: detection runs on a copy shrunk to 1600 px (boxes are mapped back),
# recognition reads the crops at full resolution. RapidOCR's default instead shrinks
# the whole page to 2000 px first, which costs the recognition its resolution (and the
# spaces between English words). No angle classifier: rendered PDF pages are upright;
# it costs ~20% more time and, on upright text, flips a few lines the wrong way.
# One OpenVINO thread per engine: see WORKERS. Errors only in the log: a blank page is no warning.
SETTINGS: dict[str, Any] = {
    "Global.log_level": "error", "Global.use_cls": False, "Global.max_side_len": 4000,
    "Det.limit_type": "max", "Det.limit_side_len": 1600,
    "EngineConfig.openvino.inference_num_threads": 1,
}
# OpenVINO CPU properties RapidOCR cannot pass: no cache of kernels per input shape (see _bound_openvino_cache).
OPENVINO_CPU: dict[str, str] = {"CPU_RUNTIME_CACHE_CAPACITY": "0"}
# Pages read at once, each by its own engine on one thread (bench/README.md, OCR).
WORKERS = 2
# Recognised lines scoring below this are dropped (RapidOCR's own default).
MIN_SCORE = 0.5
# Column detection: each side of the gutter holds at least this many boxes, which cover at
# least this share of its width (text lines do, the short cells of a table do not); at most
# this share of all boxes may cross the gutter (titles).
MIN_COLUMN_BOXES = 3
MIN_COLUMN_FILL = 0.5
# ... and at least this share of its letters and digits are letters (a table of contents' page
# numbers or a column of figures are not a text column: their rows are read across).
MIN_COLUMN_LETTERS = 0.2
MAX_CROSSING_SHARE = 0.15
# A box reaching over the gutter by at most this share of its width (a long line, a skewed
# scan, the detector's margin, a left page number merged with the heading beside it) stays on
# the side of its centre; beyond it, it crosses (a title, a running head).
CROSSING_SLACK = 0.25
MAX_COLUMN_DEPTH = 2  # a column may split once more (three or four columns)
_GUTTER_BINS = 200

_engines: list[Any] = []
_idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
_engine_error: str | None = None
_load_lock = threading.Lock()


class OCRUnavailable(RuntimeError):
    """The OCR engine cannot be used in this process; `str()` says why."""


def get_engine() -> Any:
    """Return a RapidOCR engine, loading the `WORKERS` shared engines on first use (thread-safe).

    A failure is remembered so that a document with many scanned pages does not
    retry (and log) the same failure for every page.
    """
    global _engine_error
    if _engines:
        return _engines[0]
    with _load_lock:
        if _engines:
            return _engines[0]
        if _engine_error is not None:
            raise OCRUnavailable(_engine_error)
        try:
            loaded = [new_engine() for _ in range(WORKERS)]
        except Exception as exc:  # ImportError, OSError (libGL), OpenVINO errors...
            _engine_error = f"{type(exc).__name__}: {exc}"
            raise OCRUnavailable(_engine_error) from exc
        for engine in loaded:
            _idle.put(engine)
        _engines.extend(loaded)
        return _engines[0]


def model_path(package: str, name: str) -> str:
    """Path of model `name` in `package`'s models/ folder, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"No module named {package!r} (it holds the OCR model {name})")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"OCR model {path} is missing")
    return str(path)


def engine_params(engine: str = "openvino", det: tuple[str, str] = DET_MODEL,
                  rec: tuple[str, str] = REC_MODEL) -> dict[str, Any]:
    """RapidOCR 3 parameters: `SETTINGS` on `engine` with these (package, file) models."""
    from rapidocr import EngineType  # heavy import: opencv

    kind = EngineType(engine)
    return {**SETTINGS, "Det.engine_type": kind, "Rec.engine_type": kind, "Cls.engine_type": kind,
            "Det.model_path": model_path(*det), "Rec.model_path": model_path(*rec)}


def _bound_openvino_cache() -> None:
    """Compile OpenVINO models with no per-shape kernel cache (`OPENVINO_CPU`).

    The recogniser's batches come in ever new widths, and with OpenVINO's cache of kernels per input shape the
    parser grew page after page past the child's memory limit, where OCR then failed (bench/README 11c). RapidOCR
    passes only its own few keys to OpenVINO, so its config builder is wrapped, once.
    """
    from rapidocr.inference_engine.openvino import device_config

    build = device_config.CPUConfig.get_config
    if getattr(build, "_bounded", False):
        return

    def get_config(self: Any) -> dict[str, Any]:
        return {**build(self), **OPENVINO_CPU}

    get_config._bounded = True  # type: ignore[attr-defined]
    device_config.CPUConfig.get_config = get_config


def new_engine(params: dict[str, Any] | None = None) -> Any:
    """A RapidOCR engine with its models loaded (default: `engine_params()`); raises on failure."""
    from rapidocr import RapidOCR

    _bound_openvino_cache()
    engine = RapidOCR(params=params or engine_params())
    # RapidOCR 3 loads a model on its first use; loading both now makes a broken install
    # fail here, where it becomes OCRUnavailable, rather than on the first page.
    engine._load_det_model()
    engine._load_rec_model()
    return engine


def recognise(engine: Any, image: Image.Image) -> str:
    """The text `engine` recognises in `image`, in reading order (`lines_to_text`), as the model spelt it."""
    out = engine(image)
    boxes, texts, scores = (getattr(out, key, None) for key in ("boxes", "txts", "scores"))
    if boxes is None or texts is None or scores is None:
        return ""
    return lines_to_text([[b, t, s] for b, t, s in zip(boxes, texts, scores)])


def read_page(engine: Any, image: Image.Image) -> str:
    """`recognise`'s text with the spaces the model lost between English words restored (`respace`)."""
    return respace(recognise(engine, image))


@contextmanager
def _engine_in_use() -> Iterator[Any]:
    """An engine no other thread is using (waits for one); raises OCRUnavailable."""
    get_engine()
    engine = _idle.get()
    try:
        yield engine
    finally:
        _idle.put(engine)


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
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    with _engine_in_use() as engine:
        return read_page(engine, image)


def _join_words(left: str, right: str) -> str:
    if not left:
        return right
    if not right:
        return left
    if is_cjk(left[-1]) and is_cjk(right[0]):
        return left + right
    return f"{left} {right}"


class _Box(NamedTuple):
    """One recognised text box: its extent on the page and its text."""

    top: float
    bottom: float
    left: float
    right: float
    text: str


def _boxes(result: Sequence[Sequence[Any]], min_score: float) -> list[_Box]:
    boxes = []
    for entry in result:
        try:
            box, text, score = entry[0], str(entry[1]), float(entry[2])
            ys = [float(p[1]) for p in box]
            xs = [float(p[0]) for p in box]
        except (IndexError, TypeError, ValueError):
            continue
        text = text.strip()
        if text and score >= min_score and xs and ys:
            boxes.append(_Box(min(ys), max(ys), min(xs), max(xs), text))
    return boxes


def _on_line(top: float, bottom: float, item: _Box) -> bool:
    """True when `item` overlaps the line from `top` to `bottom` by at least half the smaller height."""
    overlap = min(item.bottom, bottom) - max(item.top, top)
    smaller = min(item.bottom - item.top, bottom - top)
    return smaller > 0 and overlap >= 0.5 * smaller


def _text_lines(boxes: list[_Box]) -> list[str]:
    """Boxes overlapping vertically by at least half the smaller height are one line, left to right."""
    lines: list[list[_Box]] = []
    for item in sorted(boxes, key=lambda b: (b.top, b.left)):
        if lines:
            current = lines[-1]
            if _on_line(min(b.top for b in current), max(b.bottom for b in current), item):
                current.append(item)
                continue
        lines.append([item])
    out = []
    for line in lines:
        text = ""
        for item in sorted(line, key=lambda b: b.left):
            text = _join_words(text, item.text)
        out.append(text)
    return out


def _gutter(boxes: list[_Box]) -> float | None:
    """x of the gap between two text columns, or None when the boxes do not form two columns.

    The gap is the emptiest stretch of the x-coverage histogram in the middle of the text
    area; it may be crossed only by a few boxes (titles, headers across both columns), and
    each side must hold several boxes that cover most of its width and hold words (text
    lines, not the short cells of a table nor a column of page numbers).
    """
    if len(boxes) < 2 * MIN_COLUMN_BOXES:
        return None
    left, right = min(b.left for b in boxes), max(b.right for b in boxes)
    width = right - left
    if width <= 0:
        return None
    bins = np.zeros(_GUTTER_BINS)
    for b in boxes:
        lo = int((b.left - left) / width * (_GUTTER_BINS - 1))
        hi = int((b.right - left) / width * (_GUTTER_BINS - 1))
        bins[lo:hi + 1] += 1
    offset = int(_GUTTER_BINS * 0.25)
    middle = bins[offset:int(_GUTTER_BINS * 0.75)]
    low = float(middle.min())
    if low > MAX_CROSSING_SHARE * len(boxes):
        return None
    # The emptiest run nearest the centre of the text (columns are of equal width; a table of
    # contents also has an empty run between its titles and their page numbers), and its
    # centre: each side's share of covered bins counts from the edge of the text to that centre.
    emptiest = np.flatnonzero(middle == low) + offset
    at = int(emptiest[np.argmin(np.abs(emptiest - (_GUTTER_BINS - 1) / 2))])
    first = at - int(np.argmax(np.append(bins[at::-1] != low, True))) + 1
    last = at + int(np.argmax(np.append(bins[at:] != low, True))) - 1
    centre = (first + last) // 2
    x = left + (centre + 0.5) / (_GUTTER_BINS - 1) * width
    for side, coverage in (([b for b in boxes if b.right <= x], bins[:centre]),
                           ([b for b in boxes if b.left >= x], bins[centre + 1:])):
        if (len(side) < MIN_COLUMN_BOXES or float(np.mean(coverage > low)) < MIN_COLUMN_FILL
                or _letter_share(side) < MIN_COLUMN_LETTERS):
            return None
    return x


def _letter_share(boxes: list[_Box]) -> float:
    """Letters (any script) over letters and digits in the boxes' text (0 when there are neither)."""
    chars = [ch for b in boxes for ch in b.text if ch.isalnum()]
    return sum(ch.isalpha() for ch in chars) / len(chars) if chars else 0.0


def _reading_order(boxes: list[_Box], depth: int = 0) -> list[list[_Box]]:
    """Groups of boxes in reading order: column by column, between boxes that cross the gutter.

    Boxes crossing the gutter (a title over both columns) cut the page into bands, together
    with the boxes on their line (a running head: "INDEX", "gnuplot 5.4" across, "305"); each
    band is read left column then right column, each column split again if it has columns itself.
    """
    x = _gutter(boxes) if depth < MAX_COLUMN_DEPTH else None
    if x is None:
        return [boxes]
    cutting = _crossing_lines(boxes, x)
    taken = {id(b) for line in cutting for b in line}
    groups: list[list[_Box]] = []
    top = float("-inf")
    for line in cutting + [[]]:
        cut = min((b.top for b in line), default=float("inf"))
        band = [b for b in boxes if top <= b.top < cut and id(b) not in taken]
        for column in ([b for b in band if _side(b, x) < 0], [b for b in band if _side(b, x) > 0]):
            if column:
                groups += _reading_order(column, depth + 1)
        if line:
            groups.append(line)
        top = cut
    return groups


def _side(box: _Box, x: float) -> int:
    """-1 when `box` is left of the gutter at `x`, 1 when right of it, 0 when it crosses it."""
    over = min(x - box.left, box.right - x)
    if over <= CROSSING_SLACK * (box.right - box.left):
        return -1 if box.left + box.right < 2 * x else 1
    return 0


def _crossing_lines(boxes: list[_Box], x: float) -> list[list[_Box]]:
    """Each box crossing the gutter at `x` with the boxes on its line, top to bottom."""
    lines: list[list[_Box]] = []
    taken: set[int] = set()
    for crossing in sorted((b for b in boxes if _side(b, x) == 0), key=lambda b: b.top):
        if id(crossing) in taken:
            continue
        line = [crossing] + [b for b in boxes if id(b) not in taken and b is not crossing
                             and _on_line(crossing.top, crossing.bottom, b)]
        taken.update(id(b) for b in line)
        lines.append(line)
    return lines


def lines_to_text(result: Sequence[Sequence[Any]], min_score: float = MIN_SCORE) -> str:
    """Turn RapidOCR results `[[box, text, score], ...]` into text in reading order.

    A page with text columns is read column by column (see `_reading_order`); within a column,
    boxes that overlap vertically by at least half the smaller box's height are one line,
    joined left to right with a space (none between two CJK characters). Lines are joined
    with newlines. Pure function.
    """
    groups = _reading_order(_boxes(result, min_score))
    return "\n".join(line for group in groups for line in _text_lines(group))
