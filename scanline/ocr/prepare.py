"""Per-image pre-processing, decided from what each image measures, never applied blindly.

Tesseract's LSTM models were trained on anti-aliased grey text; a scan goes wrong for them in
a few known ways, and each fix is harmful where its problem is absent, so each is applied
only where the image shows the problem:

* **bilevel** (1-bit fax/scanner output): hard pixel edges → a light Gaussian blur gives the
  grey edges the models know. Measured on the shipped UNLV scans: 0.981 → 0.985+ recall.
* **speckle** (dust, toner): isolated dark specks of one to four pixels are read as
  punctuation that glues words together → a 3x3 median, repeated once if specks remain.
  A median on every image erodes thin strokes of clean low-resolution scans, so it runs only
  when the speck density (specks per megapixel with no other ink around them) says so.
* **skew** (2-3° is common): tesseract's line finder copes, the recogniser reads tilted
  lines worse → the angle with the sharpest row profile within ±5° is undone when it is at
  least ``MIN_SKEW`` (smaller corrections measured as noise on the real scans).
* **resolution**: without DPI metadata tesseract estimates one from the ink, and on noisy
  images the estimate throws whole text blocks away as noise → the upload's DPI, or
  ``DEFAULT_DPI``.

Upscaling is deliberately absent: measured on the bench it lowered recall (specks and JPEG
blocks grow with the glyphs).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter, ImageStat

DEFAULT_DPI = 300
DARK = 128  # grey level below which a pixel is ink
# A dark pixel with at most this many dark pixels in its 5x5 neighbourhood (itself
# included) is a speck: a 2x2 speck counts 4; a period or an i-dot at 20 px counts more.
SPECK_NEIGHBOURS = 4
# Specks per megapixel above which an image is despeckled. Measured: clean scans and
# renders 0-1,100 (the UNLV magazine pages' own dust ~1,000), speckled scans 3,000-13,000.
SPECKLED = 2000
STILL_SPECKLED = 500
BILEVEL_BLUR = 0.8
MAX_SKEW = 5.0
MIN_SKEW = 1.0
SKEW_SIDE = 1200  # the skew is measured on a copy at most this large
# Speck density is a rate: on a bigger image it is measured on evenly spaced bands of
# ``SPECK_BAND`` rows that add up to about this many pixels (a 300-dpi letter page is 8.4
# Mpx: 135 ms for the whole page, 16 ms for a sample, whose density is within about a tenth
# of the whole page's on the bench's speckled pages; the thresholds are a factor of 2-3 apart).
SPECK_SAMPLE = 1_000_000
SPECK_BAND = 128


@dataclass(frozen=True)
class Prepared:
    image: Image.Image  # mode "L"
    dpi: int
    steps: tuple[str, ...]  # what was done, for the job's timings/diagnostics
    skew: float = 0.0  # degrees the page was turned counter-clockwise (expanded) to level it


def _dark_mask(grey: Image.Image) -> Image.Image:
    return grey.point(lambda v: 255 if v < DARK else 0)


def _speck_mask(grey: Image.Image) -> Image.Image:
    """255 where a dark pixel has at most ``SPECK_NEIGHBOURS`` dark pixels in its 5x5
    neighbourhood."""
    dark01 = grey.point(lambda v: 1 if v < DARK else 0)
    around = dark01.filter(ImageFilter.Kernel((5, 5), [1] * 25, scale=1))
    lonely = around.point(lambda n: 255 if n <= SPECK_NEIGHBOURS else 0)
    return ImageChops.darker(dark01.point(lambda v: 255 * v), lonely)


def specks_per_megapixel(grey: Image.Image) -> float:
    """Lonely dark pixels per megapixel; on a big image, counted exactly on evenly spaced
    bands (each cut with the 5x5 window's reach around it, so that a glyph cut at a band's
    edge is not taken for specks)."""
    width, height = grey.size
    if width * height <= SPECK_SAMPLE or height < 2 * SPECK_BAND:
        return _speck_mask(grey).histogram()[255] * 1_000_000 / max(1, width * height)
    bands, reach = max(1, SPECK_SAMPLE // (width * SPECK_BAND)), 2
    step = height // bands
    found = 0
    for top in (i * step + (step - SPECK_BAND) // 2 for i in range(bands)):
        mask = _speck_mask(grey.crop((0, top - reach, width, top + SPECK_BAND + reach)))
        found += mask.crop((0, reach, width, reach + SPECK_BAND)).histogram()[255]
    return found * 1_000_000 / (bands * width * SPECK_BAND)


def _row_sharpness(ink: Image.Image, angle: float) -> float:
    turned = ink.rotate(angle) if angle else ink  # nearest: 8x faster than bilinear, as good here
    rows = turned.resize((1, turned.height), Image.Resampling.BOX)
    return ImageStat.Stat(rows).var[0]


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    scale = min(1.0, side / max(image.size))
    if scale == 1.0:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BOX)


def skew_angle(grey: Image.Image) -> float:
    """Degrees to rotate by (counter-clockwise) for level lines: the angle whose row
    profile of ink has the largest variance. Whole degrees on a small copy, then 0.25° and
    0.1° steps around the best on a larger one (measured: 0.03° mean error, 0.08° worst)."""
    large = _shrunk(_dark_mask(grey), SKEW_SIDE)
    small = _shrunk(large, SKEW_SIDE // 2)
    best = max((float(a) for a in range(-int(MAX_SKEW), int(MAX_SKEW) + 1)),
               key=lambda a: _row_sharpness(small, a))
    for step, reach in ((0.25, 3), (0.1, 2)):
        best = max((best + step * k for k in range(-reach, reach + 1)),
                   key=lambda a: (_row_sharpness(large, a), -abs(a)))
    return round(best, 2)


def prepare(image: Image.Image, dpi: float | None = None) -> Prepared:
    steps: list[str] = []
    bilevel = image.mode == "1"
    grey = image.convert("L")
    if bilevel:
        grey = grey.filter(ImageFilter.GaussianBlur(BILEVEL_BLUR))
        steps.append("antialias")
    elif specks_per_megapixel(grey) > SPECKLED:
        grey = grey.filter(ImageFilter.MedianFilter(3))
        steps.append("despeckle")
        if specks_per_megapixel(grey) > STILL_SPECKLED:
            grey = grey.filter(ImageFilter.MedianFilter(3))
            steps.append("despeckle")
    angle = skew_angle(grey)
    if abs(angle) < MIN_SKEW:
        angle = 0.0
    else:
        grey = grey.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        steps.append(f"deskew {angle:+.2f}")
    resolution = round(dpi) if dpi and 70 <= dpi <= 2400 else DEFAULT_DPI
    return Prepared(grey, resolution, tuple(steps), angle)
