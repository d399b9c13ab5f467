"""OCR test material: generated images with known text, the shipped real scans, and the
word-recall score both are judged by.

Images are rendered with Pillow from a fixed seed (same images in every run): DejaVu
fonts (Debian ``fonts-dejavu-core``) at several sizes, then optionally noise, blur, skew
and JPEG artefacts. The real scans come from tesseract-ocr/test (Apache-2.0), see
``tests/data/ocr-scans/README.md``.
"""

from __future__ import annotations

import io
import math
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf")
SCANS_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "ocr-scans"
SCANS = ("phototest", "eurotext", "8071_093.3B", "8087_054.3B")
_VOCABULARY = (
    "scanline invoice total amount paid receipt order number customer address street city "
    "account balance due date reference payment transfer quick brown fox jumps over lazy dog "
    "serverless function queue message storage bucket engine image text result status worker "
    "batch model letter page report summary"
)
WORDS = tuple(_VOCABULARY.split())
# Typographic quotes, apostrophes and dashes an engine may print for the ASCII ones.
_FOLD = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"',
                       "\u00bb": '"', "\u2018": "'", "\u2019": "'", "\u2014": "-",
                       "\u2013": "-"})


def words_of(text: str) -> list[str]:
    return unicodedata.normalize("NFC", text).translate(_FOLD).split()


def word_recall(truth: str, output: str) -> float:
    """|truth ∩ output| / |truth| over multisets of whitespace-separated words,
    case-sensitive, after NFC and quote/dash folding (the rule of the scans' README)."""
    expected, got = Counter(words_of(truth)), Counter(words_of(output))
    total = sum(expected.values())
    return sum((expected & got).values()) / total if total else 1.0


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes  # the encoded file, as a client would upload it
    media_type: str
    truth: str


@dataclass(frozen=True)
class Style:
    font: str = "DejaVuSans.ttf"
    size: int = 32
    noise: float = 0.0  # standard deviation of grey-level noise
    blur: float = 0.0  # Gaussian blur radius in pixels
    skew: float = 0.0  # rotation in degrees
    jpeg_quality: int | None = None


STYLES: dict[str, Style] = {
    "sans-32": Style(),
    "serif-28": Style(font="DejaVuSerif.ttf", size=28),
    "mono-24": Style(font="DejaVuSansMono.ttf", size=24),
    "bold-40": Style(font="DejaVuSans-Bold.ttf", size=40),
    "sans-20": Style(size=20),
    "noise": Style(noise=25),
    "blur": Style(blur=1.0),
    "skew": Style(skew=2.0),
    "jpeg": Style(jpeg_quality=30),
    "all": Style(font="DejaVuSerif.ttf", noise=15, blur=0.6, skew=1.5, jpeg_quality=50),
}


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def render(text: str, style: Style, *, width: int = 1000) -> Image.Image:
    """``text`` (lines separated by newlines) in black on white, then degraded."""
    font = ImageFont.truetype(str(FONT_DIR / style.font), style.size)
    lines = text.split("\n")
    line_height = int(style.size * 1.6)
    image = Image.new("L", (width, line_height * len(lines) + 2 * style.size), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((style.size, style.size + i * line_height), line, font=font, fill=0)
    if style.skew:
        image = image.rotate(style.skew, resample=Image.Resampling.BICUBIC, expand=True,
                             fillcolor=255)
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
    if style.noise:
        noise = Image.effect_noise(image.size, style.noise)
        image = Image.blend(image, noise, 0.5).point(lambda v: min(255, v * 2 - 128 + 64))
    return image.convert("RGB")


def encode(image: Image.Image, style: Style) -> tuple[bytes, str]:
    out = io.BytesIO()
    if style.jpeg_quality is not None:
        image.save(out, "JPEG", quality=style.jpeg_quality)
        return out.getvalue(), "image/jpeg"
    image.save(out, "PNG")
    return out.getvalue(), "image/png"


def generated(seed: int = 4, lines: int = 3, words_per_line: int = 6) -> list[Sample]:
    """One sample per style, each with its own text."""
    rng = random.Random(seed)
    samples = []
    for name, style in STYLES.items():
        text = "\n".join(sentence(rng, words_per_line) for _ in range(lines))
        data, media_type = encode(render(text, style), style)
        samples.append(Sample(name, data, media_type, text))
    return samples


def scans() -> list[Sample]:
    return [Sample(name, (SCANS_DIR / f"{name}.tif").read_bytes(), "image/tiff",
                   (SCANS_DIR / f"{name}.txt").read_text(encoding="utf-8"))
            for name in SCANS]


def padded_png(target_bytes: int, text: str = "scanline padded image", seed: int = 7) -> bytes:
    """A valid PNG of about ``target_bytes`` (incompressible noise below a text line), for
    measuring what a job costs the broker as the upload grows."""
    band = 80  # white rows for the text line; the noise below carries the size
    side = max(2 * band, math.ceil((band + math.sqrt(band * band + 4 * target_bytes / 3)) / 2))
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    ImageDraw.Draw(image).rectangle((0, 0, side, band), fill="white")
    ImageDraw.Draw(image).text((10, 10), text, fill="black",
                               font=ImageFont.truetype(str(FONT_DIR / FONTS[0]), 32))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()
