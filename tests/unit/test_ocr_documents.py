"""What ocr-jobs accepts as a document, judged from bytes only, with every limit checked
before a pixel is decoded or a page rendered."""

from __future__ import annotations

import io

import pikepdf
import pytest
from PIL import Image

from bench.ocr_samples import blank_pages_pdf, chained_tiff, scanned_pdf, text_pdf, tiff_of
from scanline.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from scanline.ocr import documents, tiff
from scanline.ocr.documents import DocumentLimits, UndecodableImage, inspect, pages
from scanline.ocr.outputs import pdf_file

LIMITS = DocumentLimits()


def encoded(fmt: str, size: tuple[int, int] = (40, 20), mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white").save(out, fmt, **save)
    return out.getvalue()


def first_page(data: bytes, limits: DocumentLimits = LIMITS) -> Image.Image:
    return next(pages(data, limits)).image


@pytest.mark.parametrize(("fmt", "media_type"), [
    ("PNG", "image/png"), ("JPEG", "image/jpeg"), ("TIFF", "image/tiff"),
    ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("PDF", "application/pdf")])
def test_accepted_formats_are_recognised_from_their_bytes(fmt: str, media_type: str) -> None:
    info = inspect(encoded(fmt), LIMITS)
    assert (info.media_type, info.pages) == (media_type, 1)
    if fmt != "PDF":
        assert info.sizes == ((40, 20),)


@pytest.mark.parametrize("data", [
    encoded("GIF", mode="P"), b"hello, I am text", b"\x89PNG\r\n\x1a\n",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_anything_else_is_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        inspect(data, LIMITS)


def test_a_broken_pdf_is_415() -> None:
    with pytest.raises(UndecodableImage, match="PDF"):
        inspect(b"%PDF-1.7\n", LIMITS)


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"


@pytest.mark.parametrize("tree", [
    [b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],  # the tree holds itself
    [b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
     b"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>"],  # two nodes in a loop
    [b"<< /Type /Pages /Kids 5 /Count 1 >>"],  # kids that are no array
], ids=["a tree that holds itself", "two nodes in a loop", "kids that are no array"])
def test_a_page_tree_with_no_page_where_it_counts_one_is_415_not_500(tree: list[bytes]) -> None:
    """Found from outside: PDFium opens these, then has no size for the page (a 500)."""
    data = pdf_file([CATALOG, *tree], root=1)
    with pytest.raises(UndecodableImage, match="page 1 of the PDF cannot be read"):
        inspect(data, LIMITS)


def test_pixel_limit_is_checked_from_the_header() -> None:
    with pytest.raises(PayloadTooLarge, match="pixels"):
        inspect(encoded("PNG", size=(200, 100)), DocumentLimits(max_pixels=10_000))


def test_a_side_over_the_engines_limit_is_413_within_the_pixel_limit() -> None:
    strip = encoded("PNG", size=(1, 40_000), mode="L")  # 40,000 px: far under max_pixels
    with pytest.raises(PayloadTooLarge, match="no side"):
        inspect(strip, LIMITS)


def test_decompression_bomb_is_413_before_any_pixel_is_expanded() -> None:
    bomb = encoded("PNG", size=(20_000, 20_000), mode="1")  # 400 Mpx in ~50 KiB
    assert len(bomb) < 200_000
    with pytest.raises(PayloadTooLarge):
        inspect(bomb, LIMITS)
    with pytest.raises(PayloadTooLarge):
        first_page(bomb)


def test_a_multi_page_tiff_is_its_pages() -> None:
    data = tiff_of([Image.new("L", (10, 10)), Image.new("L", (20, 30), 255)])
    info = inspect(data, LIMITS)
    assert (info.pages, info.sizes) == (2, ((10, 10), (20, 30)))
    assert [(p.number, p.image.size, p.dpi) for p in pages(data, LIMITS)] == [
        (1, (10, 10), 300), (2, (20, 30), 300)]


def test_too_many_pages_are_refused_after_walking_only_limit_plus_one() -> None:
    many = chained_tiff(100_000)  # 7.8 MB of directories
    assert tiff.walk(many, 50).sizes == [(1, 1)] * 51
    with pytest.raises(PayloadTooLarge, match="more than 50 pages"):
        inspect(many, LIMITS)
    with pytest.raises(PayloadTooLarge, match="more than 50 pages"):
        inspect(blank_pages_pdf(10_000), LIMITS)
    assert inspect(chained_tiff(50), LIMITS).pages == 50


def test_a_looping_or_truncated_tiff_is_undecodable() -> None:
    with pytest.raises(UndecodableImage, match="loop"):
        inspect(chained_tiff(5, loop=True), LIMITS)
    with pytest.raises(UndecodableImage, match=r"outside|past the end"):
        inspect(chained_tiff(5)[:60], LIMITS)


def test_a_pdf_of_more_objects_than_any_accepted_document_needs_is_refused_unopened() -> None:
    crowded = blank_pages_pdf(120_000).replace(b"startxref", b"startxrXX")  # no usable xref
    with pytest.raises(PayloadTooLarge, match="more than 100000 objects"):
        inspect(crowded, LIMITS)


def test_a_huge_pdf_page_is_refused_before_rendering() -> None:
    with pytest.raises(PayloadTooLarge, match="416667x416667"):
        inspect(blank_pages_pdf(1, 100_000, 100_000), LIMITS)


def test_total_pixels_are_limited_across_pages() -> None:
    data = blank_pages_pdf(3)  # 3 letter pages, 8.4 Mpx each at 300 dpi
    with pytest.raises(PayloadTooLarge, match="in all"):
        inspect(data, DocumentLimits(max_total_pixels=20_000_000))


def test_pdf_pages_are_rendered_at_the_configured_dpi() -> None:
    info = inspect(text_pdf(["Hello"]), LIMITS)
    assert info.sizes == ((2550, 3300),)  # US letter at 300 dpi
    # As rendered too: 792 pt x 300 / 72 is 3300.0000000000005 in floating point.
    assert first_page(blank_pages_pdf(1)).size == (2550, 3300)
    assert first_page(blank_pages_pdf(1, 595.5, 842.25)).size == (2482, 3510)  # fractions up
    page = first_page(scanned_pdf([Image.new("L", (300, 150), 255)], dpi=150))
    assert page.size == (600, 300)


def test_an_encrypted_pdf_is_422_with_a_clear_message() -> None:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(text_pdf(["secret"]))) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user="u", owner="o"))
    with pytest.raises(InvalidInput, match="password"):
        inspect(out.getvalue(), LIMITS)
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(text_pdf(["secret"]))) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user="", owner="o"))
    with pytest.raises(InvalidInput, match="encrypted"):
        inspect(out.getvalue(), LIMITS)


def test_animated_images_are_refused() -> None:
    out = io.BytesIO()
    Image.new("L", (10, 10)).save(out, "PNG", save_all=True,
                                  append_images=[Image.new("L", (10, 10), 255)])
    with pytest.raises(UnsupportedMediaType, match="animated"):
        inspect(out.getvalue(), LIMITS)


def test_truncated_image_passes_the_inspection_but_not_the_decode() -> None:
    data = encoded("PNG", size=(300, 300), mode="RGB", compress_level=0)[:5000]
    assert inspect(data, LIMITS).media_type == "image/png"
    with pytest.raises(UndecodableImage, match="truncated or corrupt"):
        first_page(data)


def test_pages_are_upright_with_transparency_on_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(out, "PNG")
    image = first_page(out.getvalue())
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (40, 20)).save(out, "JPEG", exif=exif)
    assert first_page(out.getvalue()).size == (20, 40)


@pytest.mark.parametrize(("mode", "kept"), [("1", "1"), ("L", "L"), ("RGB", "RGB"),
                                            ("P", "RGB"), ("CMYK", "RGB"), ("I;16", "RGB")])
def test_bilevel_and_grey_pages_keep_their_mode_for_the_pre_processing(mode: str,
                                                                       kept: str) -> None:
    fmt = "TIFF" if mode in ("1", "CMYK") else "PNG"
    assert first_page(encoded(fmt, mode=mode)).mode == kept


def test_media_types_are_the_formats_and_pdf() -> None:
    assert {"image/png", "image/jpeg", "image/tiff", "image/webp",
                                     "image/bmp", "application/pdf"} == documents.MEDIA_TYPES
