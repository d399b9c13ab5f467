"""What counts as an acceptable image, decided from its bytes, never from a name or header.

``sniff`` reads only what Pillow needs to identify the format, the dimensions and the
frame count, so an upload is checked without decoding it. ``load_page`` decodes the pixels
for the engine (which also proves the data is not truncated or corrupt) and says whether
the upload itself can be handed to an engine that reads image files, untouched: that
spares tesseract a re-encode per job. Both reject decompression bombs by pixel count
before any pixel data is expanded, independently of Pillow's process-wide
``MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from scanline.errors import PayloadTooLarge, UnsupportedMediaType

# Pillow format name → the media type we store and answer with.
MEDIA_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
# Uploads an engine may read as they are (leptonica reads these formats and modes itself),
# provided they are one frame, need no rotation and have no transparency; anything else
# (CMYK, palette, 16-bit, alpha, EXIF-rotated, multi-page, WebP/BMP) goes as RGB pixels.
AS_IS_FORMATS = frozenset({"PNG", "JPEG", "TIFF"})
AS_IS_MODES = frozenset({"1", "L", "RGB"})
# Pillow's own guard stays on as a second line (it raises at twice this many pixels).
Image.MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_frames: int = 1
    # Tesseract (leptonica) refuses a side over 32,767 pixels: such an image would fail on
    # every attempt, so it is refused at upload (a 1x100000 strip is within max_pixels).
    max_side: int = 32_767


@dataclass(frozen=True)
class ImageInfo:
    format: str
    media_type: str
    width: int
    height: int
    frames: int


@dataclass(frozen=True)
class Page:
    """A checked upload ready for an engine: ``pixels`` upright RGB (what every engine
    takes), ``encoded`` the upload's own bytes when they show exactly those pixels."""

    pixels: Image.Image
    encoded: bytes | None = None


def as_page(item: Page | Image.Image) -> Page:
    """Engines also take bare images (tests, in-process callers): those have no bytes."""
    return item if isinstance(item, Page) else Page(item)


class UndecodableImage(UnsupportedMediaType):
    """The bytes start like an image but the pixel data cannot be read."""


def _open(stream: IO[bytes], limits: ImageLimits) -> tuple[Image.Image, ImageInfo]:
    try:
        image = Image.open(stream, formats=list(MEDIA_TYPES))
    except UnidentifiedImageError:
        raise UnsupportedMediaType(
            "the file is not a PNG, JPEG, TIFF, WebP or BMP image") from None
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image has too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "broken header" errors
        raise UndecodableImage(f"the image header cannot be read: {exc}") from None
    assert image.format is not None
    frames = getattr(image, "n_frames", 1)
    info = ImageInfo(image.format, MEDIA_TYPES[image.format], image.width, image.height, frames)
    if info.width * info.height > limits.max_pixels:
        raise PayloadTooLarge(
            f"image is {info.width}x{info.height} pixels; the limit is {limits.max_pixels} pixels")
    if max(info.width, info.height) > limits.max_side:
        raise PayloadTooLarge(f"image is {info.width}x{info.height} pixels; no side may be "
                              f"over {limits.max_side} pixels")
    if info.frames > limits.max_frames:
        raise UnsupportedMediaType(
            f"image has {info.frames} frames/pages; at most {limits.max_frames} is accepted")
    return image, info


def sniff(stream: IO[bytes], limits: ImageLimits) -> ImageInfo:
    """Identify an image from its first bytes (the stream is left where it started)."""
    start = stream.tell()
    try:
        return _open(stream, limits)[1]
    finally:
        stream.seek(start)


def _readable_as_is(image: Image.Image) -> bool:
    return (image.format in AS_IS_FORMATS and image.mode in AS_IS_MODES
            and getattr(image, "n_frames", 1) == 1 and "transparency" not in image.info
            and image.getexif().get(ExifTags.Base.Orientation, 1) == 1)


def _upright_rgb(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def load_page(data: bytes, limits: ImageLimits) -> Page:
    """The image's first frame as upright RGB pixels (EXIF rotation applied, alpha on
    white), plus ``data`` itself when it is a plain, upright PNG/JPEG/TIFF."""
    image, _ = _open(io.BytesIO(data), limits)
    try:
        image.load()
        return Page(_upright_rgb(image), data if _readable_as_is(image) else None)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UndecodableImage(f"the image data is truncated or corrupt: {exc}") from None


def decode(data: bytes, limits: ImageLimits) -> Image.Image:
    """The image's first frame as upright RGB pixels (EXIF rotation applied, alpha on white)."""
    return load_page(data, limits).pixels
