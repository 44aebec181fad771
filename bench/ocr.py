"""OCR speed and accuracy on synthetic scans whose text is known (issue 19).

Devset page texts (English SQuAD and Chinese CMRC pages, PDFium text, no OCR) are typeset with
PIL on A4 at 300 dpi, one column or two (a two-column page holds the text of two devset pages
side by side), then made scanner-like with a fixed seed: a small skew, a mild blur and grey
noise. The true text is the lines drawn, left column first. Each OCR option reads every page
at its render resolution (the 300 dpi scan resized, as PDFium renders a scanned page at the
product's DPI); reported: pages/s and character error rate (CER: Levenshtein distance over
the true text's length, after NFKC and whitespace normalisation), per language.

The baseline is rapidocr-onnxruntime's plain `RapidOCR()` call (its defaults: angle classifier on, detector on the
page shrunk to 2000 px) on the product's 200 dpi render. Every option runs in the same process
one after the other, so they share the machine's load.

    nice -n 10 python -m bench.ocr            # 4 pages (en/zh x one/two columns), every option
    nice -n 10 python -m bench.ocr --quick    # 2 small pages, baseline and product only
    nice -n 10 python -m bench.ocr --only tesseract    # baseline, product and the tesseract options
"""

from __future__ import annotations

import re
import subprocess
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from agent._cjk import is_cjk
from bench.common import Goal, Run, markdown_table, page_texts, parser
from tests.support import DEVSET_PDFS

NAME = "ocr"
SCAN_DPI = 300
PAGE_PX = (2480, 3508)  # A4 at 300 dpi
MARGIN_PX = 300
GUTTER_PX = 90
FONT_PT = 11
SEED = 19
LONGEST_RUN = 24
EN_FONT = "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf"
ZH_FONT = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
SOURCES = {"en": ["squad_Geology.pdf", "squad_Steam_engine.pdf", "squad_Apollo_program.pdf"],
           "zh": ["cmrc2018_DEV_1011.pdf", "cmrc2018_DEV_1104.pdf", "cmrc2018_DEV_468.pdf",
                  "cmrc2018_DEV_536.pdf", "cmrc2018_DEV_573.pdf", "cmrc2018_DEV_628.pdf"]}


@dataclass
class Scan:
    """One synthetic scanned page: the 300 dpi greyscale image and the text drawn on it."""

    name: str
    lang: str
    columns: int
    image: Image.Image
    truth: str


# ------------------------------------------------------------------ typesetting

@cache
def font(lang: str, px: int) -> ImageFont.FreeTypeFont:
    """The page font: Liberation Serif for English, Noto Serif CJK SC for Chinese."""
    if lang == "en":
        return ImageFont.truetype(EN_FONT, px)
    for index in range(10):
        face = ImageFont.truetype(ZH_FONT, px, index=index)
        if face.getname()[0].endswith(" SC"):
            return face
    raise OSError(f"no Simplified Chinese face in {ZH_FONT}")


def _tokens(text: str) -> list[tuple[bool, str]]:
    """(space before, token) pairs: each CJK character is a token, other runs split at spaces."""
    out: list[tuple[bool, str]] = []
    for match in re.finditer(r"(\s*)(\S+)", text):
        space = bool(match.group(1)) and bool(out)
        for piece in _split_cjk(match.group(2)):
            out.append((space, piece))
            space = False
    return out


def _split_cjk(run: str) -> list[str]:
    """CJK characters one by one, other runs whole but at most LONGEST_RUN characters (a path
    longer than a column would otherwise run into the next column)."""
    pieces: list[str] = []
    for ch in run:
        if is_cjk(ch) or not pieces or is_cjk(pieces[-1][-1]) or len(pieces[-1]) >= LONGEST_RUN:
            pieces.append(ch)
        else:
            pieces[-1] += ch
    return pieces


def wrap(text: str, face: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    """Greedy line breaking of `text` into at most `max_lines` lines no wider than `width` px."""
    lines: list[str] = []
    line = ""
    for space, token in _tokens(text):
        candidate = line + (" " if space and line else "") + token
        if line and face.getlength(candidate) > width:
            lines.append(line)
            if len(lines) == max_lines:
                return lines
            candidate = token
        line = candidate
    if line and len(lines) < max_lines:
        lines.append(line)
    return lines


def typeset(texts: Sequence[str], lang: str, *, size: tuple[int, int] = PAGE_PX, font_pt: int = FONT_PT,
            max_lines: int | None = None) -> tuple[Image.Image, str]:
    """A clean white page with `texts` laid out in len(texts) columns; returns (image, true text)."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    px = round(font_pt * SCAN_DPI / 72)
    face = font(lang, px)
    pitch = round(px * 1.45)
    columns = len(texts)
    width = (size[0] - 2 * MARGIN_PX - GUTTER_PX * (columns - 1)) // columns
    fit = (size[1] - 2 * MARGIN_PX) // pitch
    lines_per_column = min(fit, max_lines or fit)
    truth: list[str] = []
    for c, text in enumerate(texts):
        x = MARGIN_PX + c * (width + GUTTER_PX)
        lines = wrap(text, face, width, lines_per_column)
        for n, line in enumerate(lines):
            draw.text((x, MARGIN_PX + n * pitch), line, font=face, fill=0)
        truth.extend(lines)
    return image, "\n".join(truth)


def scanner(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scanner-like degradation: skew of up to 0.4 degrees, a mild blur, grey noise (sigma 12)."""
    angle = float(rng.uniform(-0.4, 0.4))
    out = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
    out = out.filter(ImageFilter.GaussianBlur(0.8))
    pixels = np.asarray(out, dtype=np.float32) + rng.normal(0.0, 12.0, (out.height, out.width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def scan_image(page: Any, rng: np.random.Generator) -> Image.Image:
    """A PDFium page as a scanner gives it: rendered at 300 dpi in grey, then `scanner`'s skew, blur and noise."""
    return scanner(page.render(scale=SCAN_DPI / 72, grayscale=True).to_pil().convert("L"), rng)


def scanned_pdf(pages: Sequence[Any], out: Path, seed: int) -> Path:
    """PDFium pages as a scanner gives them (`scan_image`), in one image-only PDF."""
    rng = np.random.default_rng(seed)
    images = [scan_image(page, rng) for page in pages]
    images[0].save(out, "PDF", resolution=SCAN_DPI, save_all=True, append_images=images[1:],
                   creationDate=None, modDate=None)  # no dates: the same pages and seed give the same bytes
    return out


def scanned_copy(pdf: Path, out: Path, seed: int) -> Path:
    """Every page of `pdf` scanned into the image-only PDF `out` (`scanned_pdf`)."""
    doc = pypdfium2.PdfDocument(str(pdf))
    try:
        return scanned_pdf([doc[i] for i in range(len(doc))], out, seed)
    finally:
        doc.close()


def render(scan: Image.Image, dpi: int) -> Image.Image:
    """The page as PDFium would render the scan at `dpi` (a resize of the 300 dpi image)."""
    if dpi == SCAN_DPI:
        return scan
    size = (round(scan.width * dpi / SCAN_DPI), round(scan.height * dpi / SCAN_DPI))
    return scan.resize(size, Image.Resampling.BILINEAR)


# ------------------------------------------------------------------ accuracy

_CJK_SPACE = re.compile(r"(?<=[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef])\s+|\s+(?=[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef])")


def normalize(text: str) -> str:
    """Text as compared: NFKC (full-width punctuation = ASCII), no spaces beside CJK, one space elsewhere."""
    text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.split())
    return _CJK_SPACE.sub("", text)


def cer(hypothesis: str, truth: str) -> float:
    """Character error rate: edit distance / length of the true text, both normalised."""
    from rapidfuzz.distance import Levenshtein

    ref = normalize(truth)
    return Levenshtein.distance(normalize(hypothesis), ref) / max(1, len(ref))


# ------------------------------------------------------------------ pages

def _devset_texts(lang: str, count: int) -> list[str]:
    """`count` devset page texts in `lang`, longest pages first (at most one per question-free filler)."""
    texts: list[str] = []
    for name in SOURCES[lang]:
        texts += [" ".join(t.split()) for t in page_texts(DEVSET_PDFS / name)]
    texts.sort(key=len, reverse=True)
    return texts[:count]


def synthetic_scans(per_kind: int, max_lines: int | None = None) -> list[Scan]:
    """`per_kind` scans of each kind (en/zh x one/two columns), deterministic (fixed seed)."""
    rng = np.random.default_rng(SEED)
    scans: list[Scan] = []
    for lang in ("en", "zh"):
        texts = _devset_texts(lang, 3 * per_kind)
        for i in range(per_kind):
            for columns, chosen in ((1, texts[i:i + 1]), (2, texts[per_kind + 2 * i:per_kind + 2 * i + 2])):
                clean, truth = typeset(chosen, lang, max_lines=max_lines)
                scans.append(Scan(f"{lang}-{columns}col-{i + 1}", lang, columns, scanner(clean, rng), truth))
    return scans


# ------------------------------------------------------------------ OCR options

Reader = Callable[[Sequence[Image.Image]], list[str]]


@dataclass
class Option:
    """One way to OCR pages: a factory for a reader of a batch of pages, and the render DPI."""

    name: str
    dpi: int
    make: Callable[[], Reader]


def rapidocr(engine_kwargs: dict[str, Any], call_kwargs: dict[str, Any], workers: int = 1) -> Callable[[], Reader]:
    """Factory for RapidOCR readers with these settings, `workers` pages at a time (one engine
    each); text in the product's reading order."""
    from agent.ingest.ocr import lines_to_text

    def make() -> Reader:
        from concurrent.futures import ThreadPoolExecutor

        from rapidocr_onnxruntime import RapidOCR

        engines = [RapidOCR(**engine_kwargs) for _ in range(workers)]

        def one(engine: Any, image: Image.Image) -> str:
            result, _ = engine(np.asarray(image.convert("RGB")), **call_kwargs)
            return lines_to_text(result or [])

        def read(images: Sequence[Image.Image]) -> list[str]:
            if workers == 1:
                return [one(engines[0], image) for image in images]
            with ThreadPoolExecutor(workers) as pool:
                return list(pool.map(one, [engines[i % workers] for i in range(len(images))], images))
        return read
    return make


def rapidocr3(params: Callable[[], dict[str, Any]] | None = None, workers: int = 2) -> Callable[[], Reader]:
    """Factory for readers on the `rapidocr` 3 package, the product's way (`agent.ingest.ocr`
    new_engine and read_page), with the engine parameters `params()` (default: the product's)."""
    from agent.ingest import ocr as product

    def make() -> Reader:
        from concurrent.futures import ThreadPoolExecutor

        engines = [product.new_engine(params() if params else None) for _ in range(workers)]

        def read(images: Sequence[Image.Image]) -> list[str]:
            with ThreadPoolExecutor(workers) as pool:
                return list(pool.map(product.read_page, [engines[i % workers] for i in range(len(images))], images))
        return read
    return make


def tesseract(langs: str, threads: int | None = None, workers: int = 1) -> Callable[[], Reader]:
    """Factory for Debian's tesseract CLI (a process per page, its own layout analysis, `workers`
    pages at once); `threads` caps its OpenMP threads (default: all cores)."""
    import os

    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)} if threads else None

    def make() -> Reader:
        def one(image: Image.Image) -> str:
            import io

            buf = io.BytesIO()
            image.save(buf, format="PNG")
            proc = subprocess.run(["tesseract", "stdin", "stdout", "-l", langs], input=buf.getvalue(),
                                  capture_output=True, timeout=600, check=True, env=env)
            return proc.stdout.decode("utf-8", "replace")

        def read(images: Sequence[Image.Image]) -> list[str]:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                return list(pool.map(one, images))
        return read
    return make


V6_SMALL = (("rapidocr", "PP-OCRv6_det_small.onnx"), ("rapidocr", "PP-OCRv6_rec_small.onnx"))
ORT_ONE_THREAD = {"EngineConfig.onnxruntime.intra_op_num_threads": 1, "EngineConfig.onnxruntime.inter_op_num_threads": 1}


def options(quick: bool) -> list[Option]:
    """The options measured; the first is the baseline, the second the product's default."""
    from agent.ingest import ocr as product

    plain = Option("plain RapidOCR() (baseline)", 200, rapidocr({}, {}))
    ours = Option("product default (agent.ingest.ocr)", product.OCR_DPI, rapidocr3(None, product.WORKERS))
    if quick:
        return [plain, ours]
    det = {"max_side_len": 4000, "det_limit_type": "max"}
    one = {"intra_op_num_threads": 1, "inter_op_num_threads": 1}
    no_cls = {"use_cls": False}
    return [
        plain, ours,
        Option("rapidocr-onnxruntime PP-OCRv4, det 1600 px, no cls, 1 thread x 2 pages (product before)", 200,
               rapidocr({**det, "det_limit_side_len": 1600, **one}, no_cls, workers=2)),
        Option("det 1600 px, no cls, 2 threads", 200, rapidocr({**det, "det_limit_side_len": 1600}, no_cls)),
        Option("det 1600 px, no cls, 1 thread", 200, rapidocr({**det, "det_limit_side_len": 1600, **one}, no_cls)),
        Option("det 960 px, no cls, 1 thread x 2 pages", 200,
               rapidocr({**det, "det_limit_side_len": 960, **one}, no_cls, workers=2)),
        Option("tesseract eng+chi_sim", 300, tesseract("eng+chi_sim")),
        Option("tesseract eng+chi_sim, 1 thread", 300, tesseract("eng+chi_sim", threads=1)),
        Option("tesseract eng+chi_sim, 1 thread x 2 pages", 300, tesseract("eng+chi_sim", threads=1, workers=2)),
        Option("rapidocr 3 openvino, PP-OCRv6 small (rapidocr's models), 1 thread x 2 pages", 200,
               rapidocr3(lambda: product.engine_params("openvino", *V6_SMALL))),
        Option("rapidocr 3 onnxruntime, PP-OCRv6 small, 1 thread x 2 pages", 200,
               rapidocr3(lambda: product.engine_params("onnxruntime", *V6_SMALL) | ORT_ONE_THREAD)),
        Option("rapidocr 3 onnxruntime, PP-OCRv4, 1 thread x 2 pages", 200,
               rapidocr3(lambda: product.engine_params("onnxruntime") | ORT_ONE_THREAD)),
        Option("rapidocr 3 openvino, PP-OCRv6 small, det 960 px, 1 thread x 2 pages", 200,
               rapidocr3(lambda: product.engine_params("openvino", *V6_SMALL) | {"Det.limit_side_len": 960})),
    ]


def measure(opts: Sequence[Option], scans: Sequence[Scan], run: Run) -> list[dict[str, Any]]:
    """Load every engine, then read the pages two at a time with each option in turn (so a
    change in the machine's load hits every option alike); pages/s and CER per language."""
    readers, rows = [], []
    for option in opts:
        t0 = time.perf_counter()
        readers.append(option.make())
        rows.append({"option": option.name, "dpi": option.dpi, "load_s": time.perf_counter() - t0,
                     "seconds": 0.0, "per_page": {}})
    for start in range(0, len(scans), 2):
        pair = scans[start:start + 2]
        for option, read, row in zip(opts, readers, rows):
            images = [render(scan.image, option.dpi) for scan in pair]
            t0 = time.perf_counter()
            texts = read(images)
            row["seconds"] += time.perf_counter() - t0
            row["per_page"].update({scan.name: cer(text, scan.truth) for scan, text in zip(pair, texts)})
            run.log(f"{option.name}: {[scan.name for scan in pair]} {row['seconds']:.1f} s so far")
    for row in rows:
        by_lang = {lang: [v for s, v in zip(scans, row["per_page"].values()) if s.lang == lang] for lang in ("en", "zh")}
        row.update(pages_per_s=len(scans) / row["seconds"], cer=float(np.mean(list(row["per_page"].values()))),
                   cer_en=float(np.mean(by_lang["en"])), cer_zh=float(np.mean(by_lang["zh"])))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--only", nargs="*", default=[""], help="options whose name holds one of these words "
                     "(the baseline and the product always run)")
    args = cli.parse_args(argv)
    run = Run(NAME, args, argv)
    scans = synthetic_scans(1, max_lines=12 if args.quick else None)
    chosen = [o for n, o in enumerate(options(args.quick)) if n < 2 or any(w in o.name for w in args.only)]
    if args.quick:
        scans = [s for s in scans if s.name in ("en-2col-1", "zh-1col-1")]
    run.params = {"pages": [s.name for s in scans], "scan_dpi": SCAN_DPI, "font_pt": FONT_PT, "seed": SEED,
                  "truth_chars": {s.name: len(normalize(s.truth)) for s in scans}}
    rows = measure(chosen, scans, run)
    base = rows[0]
    for row in rows:
        row["speedup"] = row["pages_per_s"] / base["pages_per_s"]
        row["cer_delta"] = row["cer"] - base["cer"]
    run.results["options"] = rows
    run.table("OCR options", markdown_table(
        ["option", "dpi", "pages/s", "x baseline", "CER en", "CER zh", "CER", "Δ CER", "load s"],
        [[r["option"], r["dpi"], r["pages_per_s"], r["speedup"], r["cer_en"], r["cer_zh"], r["cer"],
          r["cer_delta"], r["load_s"]] for r in rows]))
    ours = rows[1]
    run.goals = [Goal("product pages/s vs plain RapidOCR()", ours["speedup"], ">=", 3.0, "x"),
                 Goal("product CER - plain CER", ours["cer_delta"], "<=", 0.01)]
    run.finish()


if __name__ == "__main__":
    main()
