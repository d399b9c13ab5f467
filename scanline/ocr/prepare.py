"""Per-image pre-processing, decided from what each image measures, never applied blindly.

Tesseract's LSTM models were trained on anti-aliased grey text; a scan goes wrong for them in
a few known ways, and each fix is harmful where its problem is absent, so each is applied
only where the image shows the problem:

* **bilevel** (1-bit fax/scanner output): hard pixel edges → a light Gaussian blur gives the
  grey edges the models know. Measured on the shipped UNLV scans: 0.981 → 0.985+ recall.
* **speckle** (dust, toner): isolated dark specks of one to four pixels are read as
  punctuation that glues words together → a 3x3 median, repeated once if specks remain.
  A median on every image erodes thin strokes of clean low-resolution scans, and wipes out
  small print (11-16 px text read 0-0.6 after it, 1.000 without), so it runs only when the
  density of specks *on the background* (no glyph ink within ``ISOLATION`` pixels) says so:
  the thin strokes of small print are lonely dark pixels too, but always next to a glyph.
* **skew** (2-3° is common): tesseract's line finder copes, the recogniser reads tilted
  lines worse → the angle with the sharpest row profile within ±15° is undone when it is at
  least ``MIN_SKEW`` (smaller corrections measured as noise on the real scans).
* **resolution**: without DPI metadata tesseract estimates one from the ink, and on noisy
  images the estimate throws whole text blocks away as noise → the upload's DPI, or
  ``DEFAULT_DPI``.

Upscaling is deliberately absent: measured on the bench it lowered recall (specks and JPEG
blocks grow with the glyphs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

DEFAULT_DPI = 300
DARK = 128  # grey level below which a pixel is ink (at least; see _ink_level)
INK_SHARE = 0.002  # the darkest this share of a page's pixels is its ink's level
# A dark pixel with at most this many dark pixels in its 5x5 neighbourhood (itself
# included) is a speck: a 2x2 speck counts 4; a period or an i-dot at 20 px counts more.
SPECK_NEIGHBOURS = 4
# A speck with no glyph ink (dark pixels that are not specks) this close lies on the
# background: dust, not a piece of a thin glyph.
ISOLATION = 3
# Background specks per megapixel above which an image is despeckled. Measured: clean
# scans and renders 0-300 (small print at 11-18 px 0-300, the UNLV pages 16-72), speckled
# scans 1,700-11,000 (the bench's 2,956-11,017; a letter page with 15,000 specks 1,759).
SPECKLED = 1000
# Specks per megapixel (any, after a median) above which a second median runs.
STILL_SPECKLED = 500
BILEVEL_BLUR = 0.8
MAX_SKEW = 15.0
MIN_SKEW = 1.0
SKEW_SIDE = 1200  # the skew is measured on a copy at most this large
# Speck density is a rate: on a bigger image it is measured on evenly spaced bands of
# ``SPECK_BAND`` rows that add up to about this many pixels (a 300-dpi letter page is 8.4
# Mpx: 135 ms for the whole page, 16 ms for a sample, whose density is within about a tenth
# of the whole page's on the bench's speckled pages; the thresholds are a factor of 2-3 apart).
SPECK_SAMPLE = 1_000_000
SPECK_BAND = 128
MEDIAN_ROWS = 64  # rows of a median computed together (small enough to stay in cache)


@dataclass(frozen=True)
class Prepared:
    image: Image.Image  # mode "L"
    dpi: int
    steps: tuple[str, ...]  # what was done, for the job's timings/diagnostics
    skew: float = 0.0  # degrees the page was turned counter-clockwise (expanded) to level it


def _dark_mask(grey: Image.Image) -> Image.Image:
    return grey.point(lambda v: 255 if v < DARK else 0)


def _median_of_three(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def median3(grey: Image.Image) -> Image.Image:
    """The 3x3 median, equal pixel for pixel to ``ImageFilter.MedianFilter(3)`` (edges
    repeated), 6-15 times faster: Pillow's rank filter sorts nine values per pixel; here each
    column of three is sorted once and the median taken from the three neighbouring columns'
    lows, middles and highs (the classic separable median network), on bands of rows."""
    pixels = np.asarray(grey)
    padded = np.pad(pixels, 1, mode="edge")
    out = np.empty_like(pixels)
    for top in range(0, pixels.shape[0], MEDIAN_ROWS):
        band = padded[top:top + MEDIAN_ROWS + 2]
        up, mid, down = band[:-2], band[1:-1], band[2:]
        low = np.minimum(np.minimum(up, mid), down)
        high = np.maximum(np.maximum(up, mid), down)
        middle = _median_of_three(up, mid, down)
        out[top:top + MEDIAN_ROWS] = _median_of_three(
            np.maximum(np.maximum(low[:, :-2], low[:, 1:-1]), low[:, 2:]),
            _median_of_three(middle[:, :-2], middle[:, 1:-1], middle[:, 2:]),
            np.minimum(np.minimum(high[:, :-2], high[:, 1:-1]), high[:, 2:]))
    return Image.fromarray(out, mode="L")


def _around(mask: np.ndarray, reach: int) -> np.ndarray:
    """How many set pixels each pixel's (2·reach+1)² neighbourhood holds (outside the image
    counts as unset)."""
    height, width = mask.shape
    side = 2 * reach + 1
    padded = np.pad(mask, reach)
    across = sum(padded[:, i:i + width] for i in range(side))
    return sum(across[i:i + height] for i in range(side))


def _specks(dark: np.ndarray, reach: int = 0, *, on_background: bool = False) -> int:
    """Dark pixels (``dark`` is 0/1) with at most ``SPECK_NEIGHBOURS`` dark pixels in their
    5x5 neighbourhood, and with ``on_background`` no glyph ink within ``ISOLATION``, in
    every row but the first and last ``reach`` (those rows only lend their neighbours)."""
    height = dark.shape[0]
    lonely = dark & (_around(dark, 2) <= SPECK_NEIGHBOURS)
    if on_background:
        lonely &= _around(dark & ~lonely, ISOLATION) == 0
    return int(np.count_nonzero(lonely[reach:height - reach]))


def _ink_level(grey: Image.Image) -> int:
    """The grey level below which a pixel is ink: ``DARK``, or halfway between the page's
    darkest ink and its background where even the darkest ink is a mid grey. Grey text (a
    screenshot's #5a5a5a) has few pixels under ``DARK``, each alone, so at ``DARK`` its
    glyphs measure as dust and a median would erase them."""
    histogram = grey.histogram()
    total = sum(histogram)
    darkest, seen = 0, 0
    while darkest < 255 and seen + histogram[darkest] < total * INK_SHARE:
        seen += histogram[darkest]
        darkest += 1
    if darkest < DARK // 2:  # black ink (or black specks): the fixed level holds
        return DARK
    background = max(range(256), key=histogram.__getitem__)
    return max(DARK, (darkest + background) // 2)


def specks_per_megapixel(grey: Image.Image, *, on_background: bool = False) -> float:
    """Lonely dark pixels per megapixel (``on_background``: only those far from glyphs);
    on a big image, counted exactly on evenly spaced bands (each cut with the windows'
    reach around it, so that a glyph cut at a band's edge is not taken for specks)."""
    dark = (np.asarray(grey) < _ink_level(grey)).astype(np.uint8)
    height, width = dark.shape
    if width * height <= SPECK_SAMPLE or height < 2 * SPECK_BAND:
        return _specks(dark, on_background=on_background) * 1_000_000 / max(1, width * height)
    bands = max(1, SPECK_SAMPLE // (width * SPECK_BAND))
    reach = 2 + (ISOLATION if on_background else 0)
    step = height // bands
    tops = (min(max(i * step + (step - SPECK_BAND) // 2, reach), height - SPECK_BAND - reach)
            for i in range(bands))  # each band with its reach inside the image
    found = sum(_specks(dark[top - reach:top + SPECK_BAND + reach], reach,
                        on_background=on_background) for top in tops)
    return found * 1_000_000 / (bands * width * SPECK_BAND)


class _Ink:
    """The inked pixels of a copy, centred, with their weights: a row profile at any angle
    is then one pass over them (no rotated image is made)."""

    def __init__(self, image: Image.Image) -> None:
        weights = np.asarray(image, dtype=np.float32)
        ys, xs = np.nonzero(weights)
        self.weights = weights[ys, xs]
        self.ys = ys.astype(np.float32) - image.height / 2
        self.xs = xs.astype(np.float32) - image.width / 2

    def sharpness(self, angle: float) -> float:
        """The sum of squares of the row profile after a turn of ``angle`` degrees
        counter-clockwise: largest where the lines are level (ink in few rows, gaps
        empty)."""
        if not self.weights.size:
            return 0.0
        turn = math.radians(angle)
        rows = self.ys * math.cos(turn) - self.xs * math.sin(turn)
        rows -= rows.min()
        # Each pixel shared between the two rows it falls between: rounding to the nearest
        # row instead makes the unturned profile (every pixel on a row) look the sharpest.
        below = np.floor(rows)
        upper = (rows - below) * self.weights
        index = below.astype(np.int64)
        profile = np.bincount(index, weights=self.weights - upper, minlength=index.max() + 2)
        profile[1:] += np.bincount(index, weights=upper, minlength=index.max() + 1)
        return float(profile @ profile)


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    scale = min(1.0, side / max(image.size))
    if scale == 1.0:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BOX)


def skew_angle(grey: Image.Image) -> float:
    """Degrees to rotate by (counter-clockwise) for level lines: the angle whose row
    profile of ink is sharpest. Whole degrees on a small copy, then 0.25° and 0.1° steps
    around the best on a larger one (measured on 80 generated pages of 1-8 lines, 20-36 px,
    ±4.5°: 0.03° mean error, 0.2° worst; 6 ms where turning the copy took 9). The search
    reaches ±15° (a photographed page; ±5° left a page at 8° or more scrambled): on the
    bench sets, the same recall and time as ±5°. A page without ink is left as it is."""
    large_copy = _shrunk(_dark_mask(grey), SKEW_SIDE)
    small, large = _Ink(_shrunk(large_copy, SKEW_SIDE // 2)), _Ink(large_copy)
    if not small.weights.size:
        return 0.0  # no ink: nothing to level
    # Ties (a page whose profile no turn sharpens) go to the smallest turn.
    best = max((float(a) for a in range(-int(MAX_SKEW), int(MAX_SKEW) + 1)),
               key=lambda a: (small.sharpness(a), -abs(a)))
    for step, reach in ((0.25, 3), (0.1, 2)):
        best = max((best + step * k for k in range(-reach, reach + 1)),
                   key=lambda a: (large.sharpness(a), -abs(a)))
    return round(best, 2)


def prepare(image: Image.Image, dpi: float | None = None) -> Prepared:
    steps: list[str] = []
    bilevel = image.mode == "1"
    grey = image.convert("L")
    if bilevel:
        grey = grey.filter(ImageFilter.GaussianBlur(BILEVEL_BLUR))
        steps.append("antialias")
    elif specks_per_megapixel(grey, on_background=True) > SPECKLED:
        grey = median3(grey)
        steps.append("despeckle")
        if specks_per_megapixel(grey) > STILL_SPECKLED:
            grey = median3(grey)
            steps.append("despeckle")
    angle = skew_angle(grey)
    if abs(angle) < MIN_SKEW:
        angle = 0.0
    else:
        grey = grey.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
        steps.append(f"deskew {angle:+.2f}")
    resolution = round(dpi) if dpi and 70 <= dpi <= 2400 else DEFAULT_DPI
    return Prepared(grey, resolution, tuple(steps), angle)
