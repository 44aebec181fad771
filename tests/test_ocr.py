"""OCR reading order: text columns are read one after the other, not line by line across the page."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from agent.ingest import ocr, parse
from bench.ocr import LONGEST_RUN, cer, font, normalize, render, scanner, typeset, wrap


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def two_columns(rows: int, title: bool = True, footer: bool = True) -> list:
    result = [[box(0, 0, 1000, 30), "TITLE", 0.9]] if title else []
    for i in range(rows):
        result.append([box(0, 50 + 40 * i, 470 - 15 * (i % 2), 80 + 40 * i), f"left{i}", 0.9])
        result.append([box(530, 52 + 40 * i, 1000 - 20 * (i % 3), 82 + 40 * i), f"right{i}", 0.9])
    if footer:
        result.append([box(0, 60 + 40 * rows, 1000, 90 + 40 * rows), "FOOTER", 0.9])
    return result


def test_two_columns_are_read_column_by_column_between_full_width_lines():
    lines = ocr.lines_to_text(two_columns(6)).split("\n")
    assert lines == ["TITLE"] + [f"left{i}" for i in range(6)] + [f"right{i}" for i in range(6)] + ["FOOTER"]


def test_a_heading_across_both_columns_splits_the_page_into_bands():
    top = two_columns(4, footer=False)
    below = [[[[x, y + 300] for x, y in b], text.replace("left", "L").replace("right", "R"), s]
             for b, text, s in two_columns(4, title=False, footer=False)]
    heading = [[box(100, 240, 900, 280), "SECTION 2", 0.9]]
    lines = ocr.lines_to_text(top + heading + below).split("\n")
    assert lines == (["TITLE"] + [f"left{i}" for i in range(4)] + [f"right{i}" for i in range(4)] + ["SECTION 2"]
                     + [f"L{i}" for i in range(4)] + [f"R{i}" for i in range(4)])


def test_one_column_text_and_table_rows_keep_line_order():
    one_column = [[box(0, 40 * i, 1000 - 30 * (i % 4), 30 + 40 * i), f"line{i}", 0.9] for i in range(8)]
    assert ocr.lines_to_text(one_column).split("\n") == [f"line{i}" for i in range(8)]
    # A two-column table: short cells on both sides of a wide gap are rows, not text columns.
    table = []
    for i in range(6):
        table += [[box(0, 40 * i, 120, 30 + 40 * i), f"name{i}", 0.9], [box(800, 40 * i, 900, 30 + 40 * i), f"{i}", 0.9]]
    assert ocr.lines_to_text(table).split("\n") == [f"name{i} {i}" for i in range(6)]


def test_three_columns_are_read_left_to_right():
    result = []
    for i in range(5):
        for c, x in enumerate((0, 350, 700)):
            result.append([box(x, 40 * i, x + 300, 30 + 40 * i), f"c{c}r{i}", 0.9])
    assert ocr.lines_to_text(result).split("\n") == [f"c{c}r{i}" for c in range(3) for i in range(5)]


LEFT = ("The steam engine drove the pumps of the mines for a century before the railways came, and its "
        "makers learned to build boilers that held pressure without bursting.")
RIGHT = ("Apollo 5 was the first unmanned test flight of the lunar module in Earth orbit, launched from "
         "pad 37 on January 22, 1968, by a Saturn IB rocket.")


@pytest.mark.slow  # ~10-40 s: two OCR engine passes over a synthetic scan on a loaded 2-core machine
def test_a_synthetic_two_column_scan_is_read_column_by_column():
    clean, truth = typeset([LEFT, RIGHT], "en", size=(2480, 1100), max_lines=6)
    image = render(scanner(clean, np.random.default_rng(7)), ocr.OCR_DPI)
    text = ocr.ocr_image(image)
    # PP-OCR drops some spaces between English words (bench/README.md, OCR): compare without them.
    assert cer(text.replace(" ", ""), truth.replace(" ", "")) < 0.03, text
    flat = normalize(text).replace(" ", "")
    assert flat.index("steamengine") < flat.index("bursting") < flat.index("Apollo5") < flat.index("SaturnIB")


# ------------------------------------------------------------------ several pages at once

def image_only_pdf(path: Path, pages: int) -> Path:
    """Image-only pages of growing width (so a page is known by its rendered width)."""
    images = []
    for n in range(pages):
        image = Image.new("L", (600 + 100 * n, 400), 255)
        ImageDraw.Draw(image).rectangle((50, 50, 300, 120), fill=0)
        images.append(image)
    images[0].save(path, "PDF", resolution=150, save_all=True, append_images=images[1:])
    return path


class FakeOCR:
    """Stands in for the engine: says which page it saw, records how many pages it read at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.most = self.calls = 0

    def __call__(self, image: Image.Image) -> str:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.most = max(self.most, self.active)
        time.sleep(0.3)
        with self.lock:
            self.active -= 1
        return f"width {image.width} px"


@pytest.fixture
def fake_ocr(monkeypatch) -> FakeOCR:
    fake = FakeOCR()
    monkeypatch.setattr(ocr, "get_engine", lambda: None)
    monkeypatch.setattr(ocr, "ocr_image", fake)
    return fake


def test_pages_are_ocrd_several_at_once_and_kept_in_page_order(tmp_path, fake_ocr):
    events = []
    parsed = parse.parse_pdf(image_only_pdf(tmp_path / "scan.pdf", 6), max_bytes=1 << 30, max_pages=100,
                             progress=lambda stage, done, total: events.append((stage, done, total)))
    assert parsed.ocr_pages == [1, 2, 3, 4, 5, 6]
    widths = [int(page.text.split()[1]) for page in parsed.pages]
    assert widths == sorted(widths) and len(set(widths)) == 6
    assert fake_ocr.most == ocr.WORKERS >= 2
    assert [e for e in events if e[0] == "ocr"] == [("ocr", n, 6) for n in range(7)]


def test_a_cancel_during_ocr_stops_the_pages_not_started(tmp_path, fake_ocr):
    class Cancelled(Exception):
        pass

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "ocr" and done == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        parse.parse_pdf(image_only_pdf(tmp_path / "scan.pdf", 8), max_bytes=1 << 30, max_pages=100, progress=progress)
    assert fake_ocr.calls <= 1 + ocr.WORKERS  # the page reported and those already being read


def test_scanned_pages_are_read_by_both_engines_inside_the_memory_limited_parser_child(tmp_path):
    from agent.ingest._child import parse_in_child

    path = tmp_path / "scans.pdf"
    lines = ["Quarterly report for the harbour", "the lazy dog near the river."]
    pages = []
    for n in range(3):
        image = Image.new("L", (1240, 300), 255)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            draw.text((80, 60 + 75 * i), f"{line} {n + 1}", fill=0, font=ImageFont.load_default(size=40))
        pages.append(image)
    pages[0].save(path, "PDF", resolution=150, save_all=True, append_images=pages[1:])
    parsed = parse_in_child(path, max_bytes=10**8, max_pages=100)
    assert parsed.ocr_pages == [1, 2, 3] and not parsed.warnings
    for n, page in enumerate(parsed.pages, 1):
        assert "harbour" in page.text and page.text.rstrip().endswith(f"river. {n}"), page.text


# ------------------------------------------------------------------ the benchmark's yardstick

def test_cer_ignores_layout_whitespace_and_full_width_forms_but_counts_lost_spaces():
    assert cer("hello  world\nagain", "hello world again") == 0.0
    assert cer("中文 文本，好", "中文文本,好") == 0.0  # no spaces beside CJK; NFKC: ， is ,
    assert cer("helloworld", "hello world") == pytest.approx(1 / 11)
    assert cer("", "abcd") == 1.0 and normalize(" a \t b ") == "a b"


def test_wrap_fits_the_width_keeps_every_word_and_breaks_long_runs():
    face = font("en", 40)
    text = "alpha beta gamma delta " * 10 + "x" * 100
    lines = wrap(text, face, 600, max_lines=100)
    assert all(face.getlength(line) <= 600 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert sum("x" in line for line in lines) >= 100 // LONGEST_RUN  # a 100-character run is broken up
    zh = wrap("中文文本" * 40, font("zh", 40), 400, max_lines=3)
    assert len(zh) == 3 and all(font("zh", 40).getlength(line) <= 400 for line in zh)
