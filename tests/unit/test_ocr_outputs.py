"""hOCR and the searchable PDF, made from a result (scanline.ocr.outputs)."""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

from bench.ocr_samples import text_pdf
from scanline.ocr import outputs
from scanline.ocr.outputs import PageText, hocr, pdf_page, searchable_pdf, text_over_pdf

WORDS = [{"text": "Größe", "box": [[10, 10], [110, 10], [110, 40], [10, 40]], "confidence": 0.9},
         {"text": "(a)", "box": [[130, 10], [170, 10], [170, 40], [130, 40]], "confidence": None}]
PAGE = {"page": 1, "width": 400, "height": 100, "angle": 90, "text": "Größe (a)",
        "lines": [{"text": "Größe (a)", "box": [[10, 10], [170, 10], [170, 40], [10, 40]],
                   "words": WORDS}]}
XHTML = "{http://www.w3.org/1999/xhtml}"


def test_hocr_is_xhtml_with_pages_lines_and_words() -> None:
    root = ET.fromstring(hocr([PAGE, {**PAGE, "page": 2}], "deu+eng"))
    spans = {c: root.findall(f".//*[@class='{c}']") for c in ("ocr_page", "ocr_line", "ocrx_word")}
    assert [len(v) for v in spans.values()] == [2, 2, 4]
    first = spans["ocrx_word"][0]
    assert first.text == "Größe" and first.get("title") == "bbox 10 10 110 40; x_wconf 90"
    assert spans["ocrx_word"][1].get("title") == "bbox 130 10 170 40"  # no confidence
    assert "textangle 90" in (spans["ocr_page"][0].get("title") or "")
    assert root.find(f"{XHTML}head/{XHTML}meta[@name='ocr-system']") is not None


def test_hocr_groups_lines_in_their_paragraphs() -> None:
    line = PAGE["lines"][0]
    lower = {**line, "box": [[10, 60], [170, 60], [170, 90], [10, 90]]}
    page = {**PAGE, "lines": [{**line, "paragraph": 1}, {**lower, "paragraph": 1},
                              {**lower, "paragraph": 2}]}
    root = ET.fromstring(hocr([page, PAGE]))  # PAGE: a job read before paragraphs
    pars = root.findall(".//*[@class='ocr_par']")
    assert [len(p.findall(f"{XHTML}span[@class='ocr_line']")) for p in pars] == [2, 1, 1]
    assert pars[0].get("title") == "bbox 10 10 170 90"


def test_the_pdf_has_the_page_image_and_its_words_as_text() -> None:
    image = Image.new("L", (400, 100), 255)
    data = searchable_pdf([pdf_page(image, 200, WORDS), pdf_page(image.convert("RGB"), None,
                                                                 WORDS[:1])])
    document = pdfium.PdfDocument(data)
    assert len(document) == 2
    assert document.get_page_size(0) == (144.0, 36.0)  # 400x100 px at 200 dpi
    first = document[0].get_textpage()
    assert first.get_text_range().split() == ["Größe", "(a)"]
    left, right = first.get_charbox(0)[0], first.get_charbox(4)[2]
    # The word spans its box: 10..110 px at 200 dpi is 3.6..39.6 pt.
    assert abs(left - 3.6) < 1 and abs(right - 39.6) < 2
    page = document[1].render(scale=1).to_pil()
    assert page.getextrema() == ((255, 255), (255, 255), (255, 255))  # the text is invisible


def _words_with_boxes(pdf: bytes) -> list[tuple[str, float, float, float, float]]:
    """``pdftotext -bbox``'s words: text and box in points from the page's top left."""
    found = subprocess.run(["pdftotext", "-bbox", "-", "-"], input=pdf, capture_output=True,
                           check=True).stdout.decode()
    return [(m.group(5), *(float(m.group(i)) for i in range(1, 5))) for m in re.finditer(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
        found)]


def test_a_scanned_pdf_keeps_its_pages_and_gains_the_text_on_its_words() -> None:
    scan = Image.new("L", (1000, 500), 255)
    scanned = io.BytesIO()
    scan.save(scanned, "PDF", resolution=100)  # 720 x 360 points
    word = {"text": "hello", "box": [[100, 100], [300, 100], [300, 150], [100, 150]]}
    made = text_over_pdf(scanned.getvalue(), [PageText(1000, 500, 0, [word])])
    [(text, x0, y0, x1, y1)] = _words_with_boxes(made)
    assert text == "hello"
    # y within a quarter of the word's height: where the glyphs sit in the font's em
    assert abs(x0 - 72) < 2 and abs(x1 - 216) < 3 and abs(y0 - 72) < 9 and abs(y1 - 108) < 9
    image = pdfium.PdfDocument(made)[0].get_objects()
    assert any(o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE for o in image)  # the scan itself


def test_a_born_digital_pdf_is_kept_and_its_text_not_doubled() -> None:
    original = text_pdf(["Some words already there"])
    read = PageText(2550, 3300, 0, [{"text": "Some", "box": [[300, 300], [400, 300],
                                                            [400, 340], [300, 340]]}])
    made = text_over_pdf(original, [read])
    assert [w[0] for w in _words_with_boxes(made)] == ["Some", "words", "already", "there"]
    assert b"/Helvetica" in made  # its own font, its own content


def _embedded_images(pdf: bytes) -> list[Image.Image]:
    """The PDF's images as poppler's ``pdfimages`` decodes them (pypdf misreads filtered
    one-bit images)."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "in.pdf").write_bytes(pdf)
        subprocess.run(["pdfimages", "-png", "in.pdf", "image"], cwd=folder, check=True)
        found = []
        for path in sorted(Path(folder).glob("image-*.png")):
            with Image.open(path) as image:
                found.append(image.copy())
        return found


def _scan(mode: str) -> Image.Image:
    """A page with ink of every shade its mode has: a lossy encoding would change it."""
    image = Image.effect_noise((96, 64), 80).convert(mode if mode != "1" else "L")
    return image.convert("1") if mode == "1" else image


def test_a_page_image_is_embedded_without_loss_bilevel_at_one_bit() -> None:
    pages = [_scan("1"), _scan("L"), Image.merge("RGB", [_scan("L"), _scan("L").rotate(90),
                                                         _scan("L").transpose(0)])]
    data = searchable_pdf([pdf_page(page, 300, WORDS) for page in pages])
    embedded = _embedded_images(data)
    for original, found in zip(pages, embedded, strict=True):
        assert found.mode == original.mode and found.tobytes() == original.tobytes()
    assert b"/BitsPerComponent 1" in data and b"DCTDecode" not in data


def _encoded(image: Image.Image, kind: str, **options: Any) -> tuple[bytes, Image.Image]:
    out = io.BytesIO()
    image.save(out, kind, **options)
    decoded = Image.open(io.BytesIO(out.getvalue()))
    decoded.load()
    return out.getvalue(), decoded


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_an_uploaded_jpeg_or_png_is_embedded_as_it_came_unless_it_was_turned(
        kind: str) -> None:
    upload, decoded = _encoded(Image.merge("RGB", [_scan("L")] * 3), kind)
    as_it_came = searchable_pdf([pdf_page(decoded, 300, WORDS, upload)])
    stream = upload if kind == "JPEG" else outputs._png_data(upload)
    assert stream in as_it_came
    assert _embedded_images(as_it_came)[0].tobytes() == decoded.tobytes()
    # Turned by its EXIF orientation when decoded: the stored data is not that page.
    exif = Image.Exif()
    exif[0x0112] = 6
    turned, _ = _encoded(Image.merge("RGB", [_scan("L")] * 3), kind, exif=exif.tobytes())
    upright = decoded.rotate(270, expand=True)
    data = searchable_pdf([pdf_page(upright, 300, WORDS, turned)])
    assert (turned if kind == "JPEG" else outputs._png_data(turned)) not in data
    assert _embedded_images(data)[0].tobytes() == upright.tobytes()
