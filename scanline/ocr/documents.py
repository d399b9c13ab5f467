"""What counts as an acceptable document, decided from its bytes, never from a name or header.

A document is an image (PNG, JPEG, WebP, BMP), a TIFF of one or more pages, or a PDF
(scanned or born-digital; its pages are rendered at ``render_dpi``). ``inspect`` reads only
headers and directories (Pillow's header parse, a bounded TIFF directory walk, PDFium's page
tree) and checks every limit — pages, pixels per page, pixels in all — before any pixel is
decoded or rendered, so a decompression bomb, a TIFF of a million chained directories or a
PDF of 10,000 pages costs a header read. ``pages`` then yields the pages one at a time,
decoded and upright (EXIF rotation applied, transparency on white), checking each against
the limits again: what is rendered is what was inspected.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from scanline.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from scanline.ocr import pdf, tiff

PDF = "application/pdf"
# Pillow format name → the media type we store and answer with.
IMAGE_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
MEDIA_TYPES = frozenset({*IMAGE_TYPES.values(), PDF})
# Pillow's own guard stays on as a second line (it raises at twice this many pixels).
Image.MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class DocumentLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pages: int = 50
    max_pixels: int = 40_000_000  # per page, as decoded or rendered
    max_total_pixels: int = 500_000_000
    # Tesseract (leptonica) refuses a side over 32,767 pixels: such a page would fail on
    # every attempt, so it is refused at upload (a 1x100000 strip is within max_pixels).
    max_side: int = 32_767
    render_dpi: int = 300


@dataclass(frozen=True)
class DocumentInfo:
    media_type: str
    pages: int
    sizes: tuple[tuple[int, int], ...]  # pixels per page (PDF: as rendered)


@dataclass(frozen=True)
class PageImage:
    number: int  # from 1
    image: Image.Image
    dpi: float | None  # from the file (PDF: the render resolution), None when not given


class UndecodableImage(UnsupportedMediaType):
    """The bytes start like a document but its content cannot be read."""


class EncryptedDocument(InvalidInput):
    """A PDF we could only read with a password: refused with a clear 422."""


def _check(info: DocumentInfo, limits: DocumentLimits) -> DocumentInfo:
    if info.pages == 0:
        raise UndecodableImage("the document has no pages")
    if info.pages > limits.max_pages:
        raise PayloadTooLarge(f"the document has more than {limits.max_pages} pages, the "
                              f"most one job accepts")
    total = 0
    for number, (width, height) in enumerate(info.sizes, 1):
        where = f"page {number} is" if info.pages > 1 or info.media_type == PDF else "the image is"
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(f"{where} {width}x{height} pixels; the limit is "
                                  f"{limits.max_pixels} pixels per page")
        if max(width, height) > limits.max_side:
            raise PayloadTooLarge(f"{where} {width}x{height} pixels; no side may be over "
                                  f"{limits.max_side} pixels")
        if min(width, height) < 1:
            raise UndecodableImage(f"{where} {width}x{height} pixels")
        total += width * height
    if total > limits.max_total_pixels:
        raise PayloadTooLarge(f"the document has {total} pixels in all; the limit is "
                              f"{limits.max_total_pixels}")
    return info


def _open_image(data: bytes, limits: DocumentLimits) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(IMAGE_TYPES))
    except UnidentifiedImageError:
        raise UnsupportedMediaType(
            "the file is not a PDF, nor a PNG, JPEG, TIFF, WebP or BMP image") from None
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"the image has too many pixels; a page may have at most "
                              f"{limits.max_pixels}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "broken header" errors
        raise UndecodableImage(f"the image header cannot be read: {exc}") from None


def _rendered(points: tuple[float, float], dpi: int) -> tuple[int, int]:
    return (math.ceil(points[0] * dpi / pdf.POINTS_PER_INCH),
            math.ceil(points[1] * dpi / pdf.POINTS_PER_INCH))


def inspect(data: bytes, limits: DocumentLimits) -> DocumentInfo:
    """Type, page count and page sizes from headers only; every limit checked."""
    if pdf.is_pdf(data):
        try:
            pages = pdf.inspect(data, limits.max_pages)
        except pdf.EncryptedPdf as exc:
            raise EncryptedDocument(str(exc)) from None
        except pdf.PdfTooComplex as exc:
            raise PayloadTooLarge(str(exc)) from None
        except pdf.PdfError as exc:
            raise UndecodableImage(str(exc)) from None
        return _check(DocumentInfo(PDF, pages.count, tuple(
            _rendered(size, limits.render_dpi) for size in pages.sizes)), limits)
    if tiff.is_tiff(data):
        try:
            walked = tiff.walk(data, limits.max_pages)
        except tiff.TiffError as exc:
            raise UndecodableImage(f"the TIFF cannot be read: {exc}") from None
        # An incomplete walk stopped at max_pages + 1 directories: over the limit.
        return _check(DocumentInfo(IMAGE_TYPES["TIFF"], len(walked.sizes),
                                   tuple(walked.sizes)), limits)
    image = _open_image(data, limits)
    assert image.format is not None
    if getattr(image, "n_frames", 1) > 1:
        raise UnsupportedMediaType("animated images are not accepted; send a multi-page "
                                   "TIFF or a PDF for documents of several pages")
    return _check(DocumentInfo(IMAGE_TYPES[image.format], 1, (image.size,)), limits)


def _upright(image: Image.Image) -> Image.Image:
    """EXIF rotation applied, transparency flattened on white; bilevel and grey stay so
    (the pre-processing decides from the mode), everything else becomes RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode in ("1", "L", "RGB") else image.convert("RGB")


def _dpi(image: Image.Image) -> float | None:
    dpi = image.info.get("dpi")
    try:
        return float(dpi[0]) if dpi and float(dpi[0]) > 0 else None
    except (TypeError, ValueError):
        return None


def pages(data: bytes, limits: DocumentLimits) -> Iterator[PageImage]:
    """The document's pages, decoded one at a time, after ``inspect`` has passed."""
    info = inspect(data, limits)
    if info.media_type == PDF:
        try:
            for number, image in enumerate(pdf.render(data, limits.render_dpi), 1):
                yield PageImage(number, image, limits.render_dpi)
        except pdf.PdfError as exc:
            raise UndecodableImage(str(exc)) from None
        return
    image = _open_image(data, limits)
    for index in range(info.pages):
        try:
            if index:
                image.seek(index)
            if image.size != info.sizes[index]:
                raise UndecodableImage(f"page {index + 1} is not the size its directory says")
            image.load()
            page = _upright(image)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise UndecodableImage(f"the image data is truncated or corrupt: {exc}") from None
        yield PageImage(index + 1, page, _dpi(image))
