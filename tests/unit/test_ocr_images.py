"""What ocr-jobs accepts as an image, judged from bytes only."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from scanline.errors import PayloadTooLarge, UnsupportedMediaType
from scanline.ocr.images import ImageLimits, UndecodableImage, decode, load_page, sniff

LIMITS = ImageLimits()


def encoded(fmt: str, size: tuple[int, int] = (40, 20), mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white").save(out, fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "media_type"), [
    ("PNG", "image/png"), ("JPEG", "image/jpeg"), ("TIFF", "image/tiff"),
    ("WEBP", "image/webp"), ("BMP", "image/bmp")])
def test_accepted_formats_are_recognised_from_their_bytes(fmt: str, media_type: str) -> None:
    stream = io.BytesIO(encoded(fmt))
    info = sniff(stream, LIMITS)
    assert (info.media_type, info.width, info.height, info.frames) == (media_type, 40, 20, 1)
    assert stream.tell() == 0  # left ready for the upload


@pytest.mark.parametrize("data", [
    encoded("GIF", mode="P"), b"%PDF-1.7\n", b"hello, I am text", b"\x89PNG\r\n\x1a\n",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_anything_else_is_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        sniff(io.BytesIO(data), LIMITS)


def test_pixel_limit_is_checked_from_the_header() -> None:
    with pytest.raises(PayloadTooLarge, match="pixels"):
        sniff(io.BytesIO(encoded("PNG", size=(200, 100))), ImageLimits(max_pixels=10_000))


def test_a_side_over_the_engines_limit_is_413_within_the_pixel_limit() -> None:
    strip = encoded("PNG", size=(1, 40_000), mode="L")  # 40,000 px: far under max_pixels
    with pytest.raises(PayloadTooLarge, match="no side"):
        sniff(io.BytesIO(strip), LIMITS)


def test_decompression_bomb_is_413_before_any_pixel_is_expanded() -> None:
    bomb = encoded("PNG", size=(20_000, 20_000), mode="1")  # 400 Mpx in ~50 KiB
    assert len(bomb) < 200_000
    with pytest.raises(PayloadTooLarge):
        sniff(io.BytesIO(bomb), LIMITS)
    with pytest.raises(PayloadTooLarge):
        decode(bomb, LIMITS)


def test_multi_page_tiff_is_refused() -> None:
    out = io.BytesIO()
    first, second = Image.new("L", (10, 10)), Image.new("L", (10, 10))
    first.save(out, "TIFF", save_all=True, append_images=[second])
    with pytest.raises(UnsupportedMediaType, match="2 frames"):
        sniff(io.BytesIO(out.getvalue()), LIMITS)


def test_truncated_image_passes_the_sniff_but_not_the_decode() -> None:
    data = encoded("PNG", size=(300, 300), mode="RGB", compress_level=0)[:5000]
    assert sniff(io.BytesIO(data), LIMITS).media_type == "image/png"
    with pytest.raises(UndecodableImage, match="truncated or corrupt"):
        decode(data, LIMITS)


def test_decode_gives_rgb_with_transparency_on_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(out, "PNG")
    image = decode(out.getvalue(), LIMITS)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_decode_applies_exif_rotation() -> None:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (40, 20)).save(out, "JPEG", exif=exif)
    assert decode(out.getvalue(), LIMITS).size == (20, 40)


@pytest.mark.parametrize(("fmt", "mode"), [
    ("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB"), ("JPEG", "L"), ("TIFF", "1"), ("TIFF", "RGB")])
def test_a_plain_upright_upload_is_handed_on_as_it_is(fmt: str, mode: str) -> None:
    data = encoded(fmt, mode=mode)
    page = load_page(data, LIMITS)
    assert page.encoded == data and page.pixels.mode == "RGB"


def test_other_uploads_go_as_decoded_pixels_only() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    others = {"alpha": encoded("PNG", mode="RGBA"), "palette": encoded("PNG", mode="P"),
              "transparent grey": encoded("PNG", mode="L", transparency=255),
              "cmyk": encoded("JPEG", mode="CMYK"), "rotated": encoded("JPEG", exif=exif),
              "16-bit": encoded("PNG", mode="I;16"), "webp": encoded("WEBP"),
              "bmp": encoded("BMP")}
    for name, data in others.items():
        page = load_page(data, LIMITS)
        assert page.encoded is None and page.pixels.mode == "RGB", name


def test_a_multi_page_tiff_is_never_handed_on_whole() -> None:
    out = io.BytesIO()
    first, second = Image.new("L", (10, 10)), Image.new("L", (10, 10))
    first.save(out, "TIFF", save_all=True, append_images=[second])
    assert load_page(out.getvalue(), ImageLimits(max_frames=2)).encoded is None
