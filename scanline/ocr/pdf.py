"""PDF pages through PDFium (pypdfium2): counted and measured, then rendered one at a time.

PDFium is not thread-safe, not even across documents, so every call into it holds one
process-wide lock (the server has several threads; rendering is short next to recognition,
which runs in parallel). Opening a document parses its cross-reference table and page tree
only; ``inspect`` then reads the page count and the size of at most ``limit + 1`` pages from
their dictionaries, so nothing is rendered before the limits have been checked.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

POINTS_PER_INCH = 72
# Opening a PDF costs PDFium time in proportion to its objects, most of all when the
# cross-reference table is broken and it rebuilds it by scanning them all (1.2 s of CPU for
# 190,000 in 20 MiB). A 50-page document needs a few thousand; more than this is refused
# before PDFium sees the file (counting them is a byte search, milliseconds).
MAX_OBJECTS = 100_000
_LOCK = threading.RLock()


class PdfError(ValueError):
    """The bytes are not a PDF PDFium can open."""


class PdfTooComplex(PdfError):
    """More objects than any document of the accepted size and page count needs."""


class EncryptedPdf(PdfError):
    """Encrypted (with or without a user password): we will not decrypt documents."""


@dataclass(frozen=True)
class PdfPages:
    count: int
    sizes: list[tuple[float, float]]  # points, for the first min(count, limit + 1) pages


def is_pdf(head: bytes) -> bool:
    # PDF readers accept the header anywhere in the first kilobyte.
    return b"%PDF-" in head[:1024]


def _open(data: bytes) -> pdfium.PdfDocument:
    """Open under the lock (the caller holds it); refuses encrypted documents."""
    if data.count(b"endobj") > MAX_OBJECTS:
        raise PdfTooComplex(f"the PDF has more than {MAX_OBJECTS} objects")
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedPdf("the PDF is protected by a password; upload it without "
                               "the protection") from None
        raise PdfError(f"the PDF cannot be opened: {exc}") from None
    if pdfium_c.FPDF_GetSecurityHandlerRevision(document) != -1:
        document.close()
        raise EncryptedPdf("the PDF is encrypted; upload it without the encryption "
                           "(e.g. qpdf --decrypt in.pdf out.pdf)")
    return document


@contextlib.contextmanager
def _page_errors(index: int, doing: str) -> Iterator[None]:
    """PDFium's failure on one page as the document's fault: a page tree that loops or
    holds no page dictionary where the count says one is, a page that cannot be drawn."""
    try:
        yield
    except pdfium.PdfiumError as exc:
        raise PdfError(f"page {index + 1} of the PDF cannot be {doing}: {exc}") from None


def _page_size(document: pdfium.PdfDocument, index: int) -> tuple[float, float]:
    with _page_errors(index, "read"):
        return document.get_page_size(index)


def inspect(data: bytes, limit: int) -> PdfPages:
    with _LOCK:
        document = _open(data)
        try:
            count = len(document)
            return PdfPages(count, [_page_size(document, i)
                                    for i in range(min(count, limit + 1))])
        finally:
            document.close()


def _exact(image: Image.Image, page: pdfium.PdfPage, scale: float) -> Image.Image:
    """The page at exactly its size in pixels where that is whole: PDFium's binding rounds
    the size up, and 792 pt at 300 dpi is 3300.0000000000005 in floating point (a row
    of 3301 that the page does not have, which a TIFF or PNG of it does not have either)."""
    width, height = page.get_size()
    if page.get_rotation() in (90, 270):
        width, height = height, width
    exact = tuple(round(side * scale) if abs(side * scale - round(side * scale)) < 1e-6
                  else drawn for side, drawn in ((width, image.width), (height, image.height)))
    return image if exact == image.size else image.crop((0, 0, *exact))


def render(data: bytes, dpi: int) -> Iterator[Image.Image]:
    """Each page as a grey image at ``dpi``, in order. The document stays open between
    pages but the lock is held only inside PDFium calls, so other threads' documents
    render in between."""
    with _LOCK:
        document = _open(data)
        count = len(document)
    try:
        for index in range(count):
            with _LOCK:
                with _page_errors(index, "read"):
                    page = document[index]
                try:
                    with _page_errors(index, "drawn"):
                        scale = dpi / POINTS_PER_INCH
                        bitmap = page.render(scale=scale, grayscale=True,
                                             fill_color=(255, 255, 255, 255))
                        image = _exact(bitmap.to_pil().convert("L"), page, scale)
                        bitmap.close()
                finally:
                    page.close()
            yield image
    finally:
        with _LOCK:
            document.close()
