"""Pre-processing is decided per image from what the image measures (scanline.ocr.prepare):
each step runs where its problem is, and only there."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageFilter

from bench.ocr_samples import (
    Style,
    degraded,
    generated,
    letter_page,
    render,
    scans,
    small_print,
    speckle,
)
from scanline.ocr import prepare as preparing
from scanline.ocr.prepare import (
    DEFAULT_DPI,
    SPECKLED,
    median3,
    prepare,
    skew_angle,
    specks_per_megapixel,
)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_speckled_scans_are_told_from_clean_ones() -> None:
    clean = [decoded(s.data).convert("L") for s in generated() + scans() + small_print()]
    noisy = [decoded(s.data).convert("L") for s in degraded(count=6)]
    assert max(specks_per_megapixel(i, on_background=True) for i in clean) < SPECKLED
    assert min(specks_per_megapixel(i, on_background=True) for i in noisy) > SPECKLED


def test_small_print_is_not_taken_for_speckle() -> None:
    """The thin strokes of 11-18 px text leave thousands of lonely dark pixels per
    megapixel, as many as dust, but each next to a glyph: a median would wipe the text out."""
    for sample in small_print():
        page = decoded(sample.data).convert("L")
        assert specks_per_megapixel(page) > SPECKLED, sample.name  # lonely pixels abound
        assert "despeckle" not in prepare(page).steps, sample.name
        speckled = speckle(page, random.Random(2), 0.005)
        assert "despeckle" in prepare(speckled).steps, sample.name


def test_grey_small_print_is_not_taken_for_speckle() -> None:
    """Grey text (a screenshot's #5a5a5a) has few pixels under the fixed ink level, each
    alone: measured at that level its glyphs were dust, and 11-16 px read 0.0-0.36."""
    for sample in small_print():
        grey = decoded(sample.data).convert("L").point(lambda v: 90 + v * 165 // 255)
        assert "despeckle" not in prepare(grey).steps, sample.name
    speckled = speckle(render("grey text with dust on it", Style(size=24), width=None)
                       .convert("L").point(lambda v: 90 + v * 165 // 255),
                       random.Random(3), 0.01)
    assert "despeckle" in prepare(speckled).steps  # black dust on grey text still is


def test_a_big_page_is_measured_on_bands_that_agree_with_the_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 300-dpi letter page (8.4 Mpx) is sampled: clean stays clean (no glyph cut at a
    band's edge counts as a speck), speckled is found, and the sample's density is that of
    the whole page within a quarter."""
    page = decoded(letter_page().data).convert("L")
    pages = [page] + [speckle(page, random.Random(1), d) for d in (0.002, 0.005)]
    sampled = [specks_per_megapixel(p, on_background=True) for p in pages]
    monkeypatch.setattr(preparing, "SPECK_SAMPLE", page.width * page.height)
    whole = [specks_per_megapixel(p, on_background=True) for p in pages]
    assert sampled[0] == whole[0] == 0
    assert all(s > SPECKLED and abs(s - w) < w / 4 for s, w in zip(sampled[1:], whole[1:],
                                                                      strict=True))


def test_the_median_is_pillows_pixel_for_pixel() -> None:
    """Odd sizes, edges, a band boundary (64 rows) and random pixels included."""
    rng = random.Random(3)
    for width, height in ((1, 1), (2, 3), (7, 65), (130, 129)):
        noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
        assert median3(noise).tobytes() == noise.filter(ImageFilter.MedianFilter(3)).tobytes()
    scan = speckle(decoded(degraded(count=1)[0].data).convert("L"), rng, 0.01)
    assert median3(scan).tobytes() == scan.filter(ImageFilter.MedianFilter(3)).tobytes()


def test_only_speckled_images_are_despeckled() -> None:
    page = render("a clean line of text", Style(size=24), width=None)
    assert "despeckle" not in prepare(page).steps
    noisy = speckle(page.convert("L"), random.Random(1), 0.01)
    steps = prepare(noisy).steps
    assert "despeckle" in steps
    assert specks_per_megapixel(prepare(noisy).image, on_background=True) < SPECKLED


def test_only_bilevel_images_are_antialiased() -> None:
    page = render("black and white", Style(size=24), width=None)
    assert prepare(page.convert("1")).steps[:1] == ("antialias",)
    assert "antialias" not in prepare(page).steps


def test_skew_is_measured_and_undone_and_small_angles_left_alone() -> None:
    for degrees in (-2.7, 2.2, 4.0, 11.0, -14.0):  # a scanner's tilt to a photo's
        page = render("a line of text long enough\nto measure its skew by\nits rows",
                      Style(size=28, skew=degrees), width=None).convert("L")
        assert abs(skew_angle(page) + degrees) < 0.2
        prepared = prepare(page)
        assert abs(prepared.skew + degrees) < 0.2 and prepared.steps[-1].startswith("deskew")
    level = render("level text stays as it is", Style(size=28, skew=0.3), width=None)
    assert prepare(level).skew == 0.0 and prepare(level).image.size == level.size
    for blank in (Image.new("L", (800, 600), 255), Image.new("L", (1, 1), 255)):
        assert skew_angle(blank) == 0.0 and prepare(blank).steps == ()  # nothing to level


def test_the_resolution_is_the_files_or_the_default() -> None:
    page = render("x", Style())
    assert prepare(page, 200).dpi == 200
    assert prepare(page, None).dpi == prepare(page, 5).dpi == DEFAULT_DPI
