"""Text accuracy of the tesseract engine, scored by word recall (tests/data/ocr-scans/README.md):
on the project's generated images and on the four real scans it ships."""

from __future__ import annotations

import pytest

from bench.ocr_samples import Sample, generated, scans, word_recall
from scanline.ocr.engines import TesseractEngine
from scanline.ocr.images import ImageLimits, decode

ENGINE = TesseractEngine()
# Stock tesseract 5.3 (English) scores 1.000, 0.894, 0.985, 0.935 on these scans.
SCAN_FLOOR = {"phototest": 0.99, "eurotext": 0.88, "8071_093.3B": 0.97, "8087_054.3B": 0.92}


def recall(sample: Sample) -> float:
    result = ENGINE.recognize_batch([decode(sample.data, ImageLimits())])[0]
    return word_recall(sample.truth, result.text)


@pytest.mark.parametrize("sample", generated(), ids=lambda s: s.name)
def test_generated_images_are_read(sample: Sample) -> None:
    assert recall(sample) >= 0.9


@pytest.mark.parametrize("sample", scans(), ids=lambda s: s.name)
def test_real_scans_score_near_stock_tesseract(sample: Sample) -> None:
    assert recall(sample) >= SCAN_FLOOR[sample.name]
