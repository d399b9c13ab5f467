"""Images made to hurt the OCR path, uploaded through ocr-jobs as a user would: each is a
clear 4xx at upload (413, 415, 422) or a job that ends ``failed`` with a reason (or ``done``,
for the ones that are valid images after all). Never a 5xx, never a crash of the ocr
process, and a message the ocr function cannot process ends in its dead-letter queue
instead of being retried.
"""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator

import pytest
import requests
from PIL import Image, ImageDraw

from bench.ocr_client import OcrClient
from bench.ocr_samples import blank_pages_pdf, chained_tiff
from scanline.adapters.topology import dead_letter_queue
from tests.support.broker import take
from tests.support.stack import Stack

pytestmark = pytest.mark.fuzz

REJECTED = "rejected"  # a 4xx at upload
FAILED = "failed"
DONE = "done"


def _text_image(mode: str = "RGB", size: tuple[int, int] = (360, 90)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((10, 30), "HOSTILE 42", fill="black")
    return image.convert(mode)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def bomb() -> bytes:
    """A 100,000 x 100,000 greyscale PNG header (10 gigapixels) in a few hundred bytes."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100_001 * 10)) + _png_chunk(b"IEND", b""))


def animated_webp() -> bytes:
    frames = [_text_image(), _text_image().rotate(180)]
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


def png_with_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.html", "<script>alert(1)</script>")
    return _save(_text_image(), "PNG") + archive.getvalue()


def jpeg_html() -> bytes:
    """A JPEG whose comment segment is an HTML document (and HTML after the end marker)."""
    html = b"<html><script>alert(document.domain)</script></html>"
    return _save(_text_image(), "JPEG", comment=html) + html


def _cut(data: bytes) -> bytes:
    return data[: len(data) * 6 // 10]


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" '
       b'height="10"><script>alert(1)</script></svg>')
PDF = b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

# name → (bytes, the outcomes that are acceptable)
CASES: dict[str, tuple[Callable[[], bytes], set[str]]] = {
    "truncated PNG": (lambda: _cut(_save(_text_image(), "PNG")), {REJECTED, FAILED}),
    "truncated JPEG": (lambda: _cut(_save(_text_image(), "JPEG", quality=95)),
                       {REJECTED, FAILED}),
    "decompression bomb (100000x100000 PNG)": (bomb, {REJECTED}),
    # Within the pixel limit, but tesseract refuses it: every attempt would fail.
    "1x100000 pixels": (lambda: _save(Image.new("L", (1, 100_000), 255), "PNG"), {REJECTED}),
    "CMYK TIFF": (lambda: _save(_text_image("CMYK"), "TIFF"), {DONE}),
    "animated WebP": (animated_webp, {REJECTED}),
    "PNG with a ZIP appended": (png_with_zip, {DONE, REJECTED}),
    "JPEG/HTML polyglot": (jpeg_html, {DONE, REJECTED}),
    "zero bytes": (lambda: b"", {REJECTED}),
    "SVG named .png": (lambda: SVG, {REJECTED}),
    "PDF without pages named .png": (lambda: PDF, {REJECTED}),
    # Documents that try to exhaust the page and pixel limits: refused from their headers.
    "TIFF of 100,000 chained directories": (lambda: chained_tiff(100_000), {REJECTED}),
    "TIFF whose directories loop": (lambda: chained_tiff(4, loop=True), {REJECTED}),
    "PDF of 10,000 pages": (lambda: blank_pages_pdf(10_000), {REJECTED}),
    "PDF page of 100,000 x 100,000 points": (lambda: blank_pages_pdf(1, 100_000, 100_000),
                                             {REJECTED}),
}

RESULTS: dict[str, str] = {}


def _dead_letters(stack: Stack, job_id: str, timeout: float = 15) -> int:
    """How many messages about ``job_id`` reached the ocr dead-letter queue (taken out)."""
    deadline = time.monotonic() + timeout
    found: list[bytes] = []
    while not found and time.monotonic() < deadline:
        found = take(stack.amqp_url, dead_letter_queue("ocr"), lambda b: job_id.encode() in b)
        time.sleep(0.2)
    time.sleep(0.5)  # a second copy would mean the message was delivered twice
    return len(found) + len(take(stack.amqp_url, dead_letter_queue("ocr"),
                                 lambda b: job_id.encode() in b))


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    width = max(map(len, RESULTS), default=0)
    print("\nhostile image".ljust(width + 1) + " | outcome")
    for name, outcome in RESULTS.items():
        print(name.ljust(width) + " | " + outcome)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_image_is_refused_or_fails_cleanly(stack: Stack, fuzz_user: OcrClient,
                                                   name: str, no_crash: None) -> None:
    make, acceptable = CASES[name]
    r = fuzz_user.upload(make(), "scan.png", "image/png")
    assert r.status_code < 500, r.text
    if r.status_code != 202:
        RESULTS[name] = f"{r.status_code} {r.json()['detail']}"
        assert r.status_code in (413, 415, 422), r.text
        assert r.headers["Content-Type"] == "application/problem+json"
        assert REJECTED in acceptable, f"{name}: {r.text}"
        return
    job = fuzz_user.wait_done(r.json()["job_id"], timeout=90)
    RESULTS[name] = f"202, job {job['status']}" + (f": {job['error']}" if job["error"] else "")
    assert job["status"] in acceptable, job
    if job["status"] == FAILED:
        assert job["error"], job
        # The ocr function answered 4xx: the message was dead-lettered, not retried.
        assert _dead_letters(stack, job["job_id"]) == 1
    assert requests.get(f"{stack.gateway}/healthz", timeout=10).json()["status"] == "ok"
