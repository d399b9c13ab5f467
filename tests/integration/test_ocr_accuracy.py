"""Text accuracy of the tesseract engine, scored by word recall (tests/data/ocr-scans/README.md):
on the project's generated images and on the four real scans it ships."""

from __future__ import annotations

import pytest

from bench.ocr_samples import Sample, generated, scans, word_recall
from scanline.ocr.engines import TesseractEngine
from scanline.ocr.images import ImageLimits, Page, load_page

ENGINE = TesseractEngine()
# Stock tesseract 5.3 (English) scores 1.000, 0.894, 0.985, 0.935 on these scans.
SCAN_FLOOR = {"phototest": 0.99, "eurotext": 0.88, "8071_093.3B": 0.97, "8087_054.3B": 0.92}


def recall(sample: Sample) -> float:
    result = ENGINE.recognize_batch([load_page(sample.data, ImageLimits())])[0]
    return word_recall(sample.truth, result.text)


@pytest.mark.parametrize("sample", generated(), ids=lambda s: s.name)
def test_generated_images_are_read(sample: Sample) -> None:
    assert recall(sample) >= 0.9


@pytest.mark.parametrize("sample", scans(), ids=lambda s: s.name)
def test_real_scans_score_near_stock_tesseract(sample: Sample) -> None:
    assert recall(sample) >= SCAN_FLOOR[sample.name]


def test_an_upload_read_as_it_is_gives_what_its_decoded_pixels_give() -> None:
    sample = generated()[0]
    page = load_page(sample.data, ImageLimits())
    assert page.encoded == sample.data  # piped to tesseract without a re-encode
    as_is, pixels = ENGINE.recognize_batch([page, page.pixels])
    assert as_is.text == pixels.text and word_recall(sample.truth, as_is.text) >= 0.9


def test_bytes_tesseract_cannot_read_fall_back_to_the_decoded_pixels() -> None:
    sample = generated()[0]
    page = Page(load_page(sample.data, ImageLimits()).pixels, encoded=b"\x89PNG\r\n\x1a\nbroken")
    assert word_recall(sample.truth, ENGINE.recognize_batch([page])[0].text) >= 0.9
