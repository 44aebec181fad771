"""PNG/JPEG: one page of text recognised by the project's OCR engine (agent.ingest.ocr)."""
from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from agent.errors import DocumentError
from agent.ingest import ocr
from agent.ingest.formats._section import Section

MAX_PIXELS = 60_000_000  # larger images are refused before decoding (decompression bombs)


def _open(data: bytes) -> Image.Image:
    """The decoded, upright image, or DocumentError when the bytes are not a readable picture."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise DocumentError("The image is too large to read.", "Scale it down below 60 megapixels.")
            image.load()
    except DocumentError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        raise DocumentError("The image is damaged or not a PNG/JPEG picture.", "Re-save it and upload again.") from None
    image = ImageOps.exif_transpose(image)  # phone photos carry their rotation in EXIF
    image.thumbnail((ocr.MAX_SIDE_PX, ocr.MAX_SIDE_PX))
    return image


def read(data: bytes) -> list[Section]:
    """One section (number 1, location "image": the picture, not a page) holding the recognised text;
    refused when OCR is not installed."""
    image = _open(data)
    try:
        text = ocr.ocr_image(image)
    except ocr.OCRUnavailable:
        raise DocumentError("Reading text from images needs the OCR engine, which is not installed.",
                            "Install the OCR extra (see README) or upload a PDF/text version.") from None
    return [Section(1, text, "image", ocr=True)]
