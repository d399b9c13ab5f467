"""A job's result as the files OCR users expect: hOCR and a searchable PDF.

hOCR (the format tesseract, OCRopus and OCRmyPDF exchange) is made from the stored pages
when it is asked for. The searchable PDF of an uploaded PDF is that PDF with invisible text
over its scanned pages (``text_over_pdf``). For an image the worker makes it while it still
has the page images: each page is its image with the recognised words drawn over it in
invisible text (render mode 3), each word placed on its box and stretched to its width,
as tesseract's PDF renderer and OCRmyPDF do. The image loses nothing, as with OCRmyPDF's
default: an uploaded JPEG or PNG is embedded as it came (its image data, not decoded and
encoded again), any other page losslessly (PNG's filtered Deflate, which a PDF reads as it
is: bilevel scans at one bit per pixel). The text uses Courier from the PDF
standard fonts (every glyph 600/1000 em wide, so a word's width is exact without embedding
a font) in WinAnsi encoding, which covers the Western European languages offered; a
character outside it is written as "?" in the text layer only.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from PIL import Image

_COURIER_ADVANCE = 0.6  # em
# Pillow's modes a page image is in (scanline.ocr.documents), as PDF colours and bits.
_PDF_COLOURS = {"1": (b"/DeviceGray", 1, 1), "L": (b"/DeviceGray", 1, 8),
                "RGB": (b"/DeviceRGB", 3, 8)}
_EXIF_ORIENTATION = 0x0112


def _bbox(box: Sequence[Sequence[int]]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    return min(xs), min(ys), max(xs), max(ys)


def _title(box: Sequence[Sequence[int]]) -> str:
    return "bbox {} {} {} {}".format(*_bbox(box))


def hocr(pages: Sequence[dict[str, Any]], languages: str = "eng") -> str:
    """hOCR 1.2: ``ocr_page`` → ``ocr_par`` → ``ocr_line`` → ``ocrx_word`` with bbox and
    x_wconf (a paragraph is the lines the engine put in one; a job read before lines had
    paragraphs has one a page). A word says its language only when the job had one: of
    several, which one read each word is not kept."""
    lang = "" if "+" in languages else f' lang="{escape(languages)}"'
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
           '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
           '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
           "<head>", "<title></title>",
           '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>',
           '<meta name="ocr-system" content="scanline"/>',
           '<meta name="ocr-capabilities" '
           'content="ocr_page ocr_par ocr_line ocrx_word ocrp_wconf"/>',
           "</head>", "<body>"]
    for page in pages:
        n = page["page"]
        out.append(f'<div class="ocr_page" id="page_{n}" title="bbox 0 0 {page["width"]} '
                   f'{page["height"]}; ppageno {n - 1}; textangle {page["angle"]}">')
        paragraphs: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for i, line in enumerate(page["lines"], 1):
            paragraphs.setdefault(line.get("paragraph", 1), []).append((i, line))
        for p, lines in paragraphs.items():
            corners = [point for _, line in lines for point in line["box"]]
            out.append(f'<p class="ocr_par" id="par_{n}_{p}" title="{_title(corners)}">')
            for i, line in lines:
                out.append(f'<span class="ocr_line" id="line_{n}_{i}" '
                           f'title="{_title(line["box"])}">')
                for j, word in enumerate(line["words"], 1):
                    conf = "" if word["confidence"] is None else \
                        f"; x_wconf {round(word['confidence'] * 100)}"
                    out.append(f'<span class="ocrx_word" id="word_{n}_{i}_{j}" '
                               f'title="{_title(word["box"])}{conf}"{lang}>'
                               f"{escape(word['text'])}</span>")
                out.append("</span>")
            out.append("</p>")
        out.append("</div>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


@dataclass(frozen=True)
class PdfPage:
    image: bytes  # the image XObject's stream
    image_entries: bytes  # and its dictionary's entries but the length
    width: int  # pixels
    height: int
    dpi: float
    words: list[dict[str, Any]]  # {"text", "box"} in this page's pixels


def pdf_page(image: Image.Image, dpi: float | None, words: list[dict[str, Any]],
             original: bytes | None = None) -> PdfPage:
    """What the PDF needs of one page, made while the worker has its image; ``original``:
    the uploaded file the page was decoded from, whose image data is embedded as it is
    when the page is exactly its image (a JPEG or PNG, upright as stored, opaque)."""
    stored = _as_stored(original, image) if original is not None else None
    if stored is not None:
        return PdfPage(*stored, image.width, image.height, dpi or 300, words)
    if image.mode not in _PDF_COLOURS:
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)  # 2x faster than 6, a third larger
    return PdfPage(_png_data(out.getvalue()), _flate_entries(image), image.width,
                   image.height, dpi or 300, words)


def _as_stored(original: bytes, image: Image.Image) -> tuple[bytes, bytes] | None:
    """The image XObject's stream and entries straight from the uploaded file."""
    with Image.open(io.BytesIO(original)) as stored:
        if (stored.size != image.size or stored.mode != image.mode
                or image.mode not in _PDF_COLOURS or "transparency" in stored.info
                or stored.getexif().get(_EXIF_ORIENTATION, 1) != 1):
            return None
        if stored.format == "JPEG" and image.mode != "1":
            colours = _PDF_COLOURS[image.mode][0]
            return original, b"/ColorSpace %s /BitsPerComponent 8 /Filter /DCTDecode" % colours
        if stored.format == "PNG" and not stored.info.get("interlace"):
            return _png_data(original), _flate_entries(image)
    return None


def _flate_entries(image: Image.Image) -> bytes:
    colours, components, bits = _PDF_COLOURS[image.mode]
    return (b"/ColorSpace %s /BitsPerComponent %d /Filter /FlateDecode /DecodeParms "
            b"<< /Predictor 15 /Colors %d /BitsPerComponent %d /Columns %d >>"
            % (colours, bits, components, bits, image.width))


def _png_data(png: bytes) -> bytes:
    """A PNG's data stream (its IDAT chunks joined): rows filtered by PNG's predictors,
    then Deflate, which a PDF's FlateDecode with ``/Predictor 15`` reads as it is."""
    at, data = 8, []
    while at + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        if kind == b"IDAT":
            data.append(png[at + 8:at + 8 + length])
        at += 12 + length
    return b"".join(data)


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _text_layer(page: PdfPage) -> bytes:
    scale = 72 / page.dpi
    return _text_ops(page.words, scale, scale, page.height * scale)


def _text_ops(words: Sequence[dict[str, Any]], sx: float, sy: float, height: float,
              font: bytes = b"/F1") -> bytes:
    """Invisible text (render mode 3) for ``words`` (boxes in pixels, y down) in a frame of
    ``height`` points (y up), ``sx``/``sy`` points per pixel."""
    ops = [b"BT", b"3 Tr"]
    for word in words:
        text = word["text"]
        x0, y0, x1, y1 = _bbox(word["box"])
        if not text or x1 <= x0 or y1 <= y0:
            continue
        size = (y1 - y0) * sy
        stretch = 100 * (x1 - x0) * sx / (len(text) * _COURIER_ADVANCE * size)
        ops.append(font + b" %.2f Tf %.2f Tz 1 0 0 1 %.2f %.2f Tm %s Tj" % (
            size, stretch, x0 * sx, height - y1 * sy + 0.2 * size, _pdf_string(text)))
    ops.append(b"ET")
    return b"\n".join(ops)


@dataclass(frozen=True)
class PageText:
    """A page of a PDF as it was read: its size in pixels upright, the turn undone to read
    it (``angle``, clockwise), and its words in those pixels."""

    width: int
    height: int
    angle: int
    words: list[dict[str, Any]]


def _upright_to_page(angle: int, width: float, height: float) -> tuple[float, ...]:
    """The matrix from the upright frame (points, y up) to the page as drawn, ``width`` x
    ``height`` points: the page was turned counter-clockwise by ``angle`` to be read."""
    return {0: (1, 0, 0, 1, 0, 0), 90: (0, -1, 1, 0, 0, height),
            180: (-1, 0, 0, -1, width, height), 270: (0, 1, -1, 0, width, 0)}[angle % 360]


def text_over_pdf(original: bytes, pages: Sequence[PageText]) -> bytes:
    """The uploaded PDF itself with the invisible text over each page that has none, as
    OCRmyPDF makes it (``--skip-text``): the pages keep their own content (vector text
    stays text, images stay as they were encoded), only a text layer is merged over a
    scanned page. A page's rotation is first moved into its content (PDFium rendered it
    turned), so that the words' frame is the page's."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(original)))
    for page, read in zip(writer.pages, pages, strict=True):
        if page.extract_text().strip():
            continue  # born-digital: already searchable, a second text would double it
        page.transfer_rotation_to_content()
        box = page.cropbox
        width, height = float(box.width), float(box.height)
        quarter = read.angle % 180 == 90
        # Points per pixel of the page as PDFium drew it (the upright page turned back).
        drawn_w, drawn_h = (read.height, read.width) if quarter else (read.width, read.height)
        per_x, per_y = width / max(1, drawn_w), height / max(1, drawn_h)
        sx, sy = (per_y, per_x) if quarter else (per_x, per_y)
        turn = b" ".join(b"%.4f" % v for v in _upright_to_page(read.angle, width, height))
        content = (b"1 0 0 1 %.3f %.3f cm %s cm\n" % (float(box.left), float(box.bottom), turn)
                   + _text_ops(read.words, sx, sy, read.height * sy))
        layer = pdf_file([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.3f %.3f] "
            b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>" % (
                float(page.mediabox.right), float(page.mediabox.top)),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)], root=1)
        page.merge_page(PdfReader(io.BytesIO(layer)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def searchable_pdf(pages: Sequence[PdfPage]) -> bytes:
    """Page images with their invisible text, one PDF page per page (sized by its DPI)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier "
               b"/Encoding /WinAnsiEncoding >>")
    kids = []
    tree = add(b"")
    for n, page in enumerate(pages, 1):
        width, height = page.width * 72 / page.dpi, page.height * 72 / page.dpi
        image = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d %s /Length %d "
                    b">>\nstream\n%s\nendstream" % (page.width, page.height,
                                                     page.image_entries, len(page.image),
                                                     page.image))
        content = b"q %.2f 0 0 %.2f 0 0 cm /Im%d Do Q\n%s" % (width, height, n,
                                                               _text_layer(page))
        stream = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] "
                        b"/Resources << /Font << /F1 %d 0 R >> /XObject << /Im%d %d 0 R >> >> "
                        b"/Contents %d 0 R >>" % (tree, width, height, font, n, image, stream)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (
        len(kids), b" ".join(b"%d 0 R" % k for k in kids))
    return pdf_file(objects, root=catalog)


def pdf_file(objects: Sequence[bytes], root: int) -> bytes:
    """A PDF file of these objects (numbered from 1; ``root`` is the catalog's number),
    with its cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, root, xref))
    return out.getvalue()
