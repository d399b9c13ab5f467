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
import struct
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from scanline.ocr.outputs import pdf_file

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

    @property
    def clean(self) -> bool:
        """Text as it was drawn: nothing here may cost a word."""
        return not (self.noise or self.blur or self.skew) and self.jpeg_quality is None


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


def render(text: str, style: Style, *, width: int | None = 1000) -> Image.Image:
    """``text`` (lines separated by newlines) in black on white, then degraded; the page
    is ``width`` wide, or wider where a line needs it (a word cut at the edge is not in
    the image its truth describes); None fits it to the longest line."""
    font = ImageFont.truetype(str(FONT_DIR / style.font), style.size)
    lines = text.split("\n")
    fitted = math.ceil(max(font.getlength(line) for line in lines)) + 2 * style.size
    width = max(width or 0, fitted)
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


# A broader word list for the degraded set: capitals, digits and sentence punctuation as
# documents have them, so a result is not a lucky match on a few dozen lower-case words.
_PROSE = (
    "the of and to in is was for that with as on by at from this have which are be or an "
    "not but all were when we there can if more no one other would what about some into "
    "time only has two may then do first any new very after most also made over such where "
    "through years should well people because each between both under never system public "
    "number state water during against without place around however small general order "
    "course government children house service possible market business research interest "
    "national question political development several industry information increase social "
    "committee different present received century hospital evidence difficult particular "
    "Monday London Paris Robert March Company Street Office Report Council Minister Europe"
)
PROSE = tuple(_PROSE.split())
DEGRADED_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
                  "DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf")


def prose_line(rng: random.Random, n: int) -> str:
    words = [rng.choice(PROSE) for _ in range(n)]
    words[0] = words[0].capitalize()
    if rng.random() < 0.3:
        number = rng.choice((str(rng.randint(2, 999)),
                             f"{rng.randint(1, 99)}.{rng.randint(10, 99)}"))
        words[rng.randrange(1, n)] = number
    return " ".join(words) + rng.choice((".", ".", ",", ""))


def speckle(image: Image.Image, rng: random.Random, density: float) -> Image.Image:
    """Dark specks of one to two pixels, the dust and toner of a scanner glass."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width, height = out.size
    for _ in range(int(width * height * density)):
        x, y, side = rng.randrange(width), rng.randrange(height), rng.choice((1, 1, 2))
        draw.rectangle((x, y, x + side - 1, y + side - 1), fill=rng.randint(0, 90))
    return out


def degraded(seed: int = 12, count: int = 24, lines: int = 4, words_per_line: int = 7
             ) -> list[Sample]:
    """Scans gone wrong, each with every degradation at a random strength: one of several
    fonts at 20-40 px, a 2-3 degree skew either way, blur, speckle noise and JPEG at
    quality 30-75."""
    rng = random.Random(seed)
    samples = []
    for n in range(count):
        size = rng.randint(20, 40)
        text = "\n".join(prose_line(rng, words_per_line) for _ in range(lines))
        style = Style(font=rng.choice(DEGRADED_FONTS), size=size,
                      skew=rng.choice((-1, 1)) * rng.uniform(2, 3), blur=rng.uniform(0.3, 0.9))
        image = render(text, style, width=None).convert("L")
        image = speckle(image, rng, rng.uniform(0.002, 0.01))
        data, media_type = encode(image.convert("RGB"),
                                  Style(jpeg_quality=rng.randint(30, 75)))
        samples.append(Sample(f"degraded-{n:02d}", data, media_type, text))
    return samples


SMALL_PRINT_SIZES = (11, 12, 14, 16, 18)


def small_print(seed: int = 5, lines: int = 6, words_per_line: int = 8) -> list[Sample]:
    """Clean text at 11-18 px, as screenshots, faxes at 100-150 dpi and small print are:
    thin strokes, many of whose darkest pixels stand alone (read as specks by a careless
    measure, erased by a median)."""
    rng = random.Random(seed)
    samples = []
    for size in SMALL_PRINT_SIZES:
        text = "\n".join(prose_line(rng, words_per_line) for _ in range(lines))
        style = Style(size=size)
        data, media_type = encode(render(text, style, width=None), style)
        samples.append(Sample(f"small-{size}px", data, media_type, text))
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


# --- documents: several pages, PDFs (scanned and born-digital), other languages ---------

GERMAN = ("Größe", "Übung", "schön", "Straße", "für", "über", "Bücher", "Mädchen", "Käse",
          "Brücke", "grün", "Tür", "König", "hören", "Löwe", "müde", "Fähre", "Schlüssel",
          "ähnlich", "Öffnung", "natürlich", "Frühstück", "Stadt", "Haus", "Wasser", "und")


def german(seed: int = 3, lines: int = 4, words_per_line: int = 6) -> Sample:
    """A German page with umlauts and ß, for ``languages=deu``."""
    rng = random.Random(seed)
    text = "\n".join(" ".join(rng.choice(GERMAN) for _ in range(words_per_line))
                     for _ in range(lines))
    data, media_type = encode(render(text, Style(size=32), width=None), Style())
    return Sample("german", data, media_type, text)


def page_images(samples: list[Sample]) -> list[Image.Image]:
    return [Image.open(io.BytesIO(s.data)).convert("L") for s in samples]


def tiff_of(images: list[Image.Image], dpi: int = 300) -> bytes:
    out = io.BytesIO()
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:], dpi=(dpi, dpi),
                   compression="tiff_lzw")
    return out.getvalue()


def scanned_pdf(images: list[Image.Image], dpi: int = 300) -> bytes:
    """A PDF of page images only, as a scanner makes it."""
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return out.getvalue()


def text_pdf(lines: list[str], size: int = 14) -> bytes:
    """A born-digital PDF: ``lines`` typeset in Helvetica on a letter page, no image."""
    content = b"BT /F1 %d Tf 72 720 Td %d TL " % (size, int(size * 1.5)) + b" ".join(
        b"(%s) Tj T*" % line.encode("cp1252") for line in lines) + b" ET"
    return pdf_file([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)], root=1)


def blank_pages_pdf(pages: int, width: float = 612, height: float = 792) -> bytes:
    """``pages`` empty pages of ``width`` x ``height`` points: tiny on disk, whatever the
    count or the size it claims (a 10,000-page PDF is about 1 MB)."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] >>" % (width, height)
    return pdf_file([b"<< /Type /Catalog /Pages 2 0 R >>",
                     b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, kids),
                     *([page] * pages)], root=1)


def chained_tiff(directories: int, loop: bool = False) -> bytes:
    """A TIFF of ``directories`` chained 1x1 pages (12 bytes of directory each, plus the
    shared pixel), the last pointing back to the first when ``loop``."""
    head = b"II*\0" + struct.pack("<I", 8)
    entries = 6  # width, length, bits, compression, strip offset, strip byte count
    size = 2 + entries * 12 + 4
    pixel_at = 8 + directories * size
    out = bytearray(head)
    for n in range(directories):
        following = 8 + (n + 1) * size if n + 1 < directories else (8 if loop else 0)
        out += struct.pack("<H", entries)
        for tag, kind, value in ((256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1),
                                 (273, 4, pixel_at), (279, 4, 1)):
            out += struct.pack("<HHII", tag, kind, 1, value)
        out += struct.pack("<I", following)
    out += b"\xff"
    return bytes(out)


def letter_page(seed: int = 8, lines: int = 48, words_per_line: int = 11) -> Sample:
    """A US-letter page at 300 dpi (2550 x 3300) of 11 pt serif prose with 1-inch margins,
    as a scanner at 300 dpi makes a typed letter."""
    rng = random.Random(seed)
    text = "\n".join(prose_line(rng, words_per_line) for _ in range(lines))
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSerif.ttf"), 44)  # 11 pt at 300 dpi
    image = Image.new("L", (2550, 3300), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(text.split("\n")):
        draw.text((300, 300 + i * 56), line, font=font, fill=0)
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(300, 300))
    return Sample("letter", out.getvalue(), "image/png", text)
