"""Documents through the gateway, as a user moving from Textract or OCRmyPDF would send
them: scanned and born-digital PDFs, multi-page TIFFs, languages, sideways pages, the
limits, and the text, hOCR and searchable PDF of a finished job."""

from __future__ import annotations

import io
import subprocess
import xml.etree.ElementTree as ET

import pikepdf
import pytest
import requests
from PIL import Image

from bench.ocr_client import OcrClient
from bench.ocr_samples import (
    blank_pages_pdf,
    chained_tiff,
    generated,
    german,
    page_images,
    scanned_pdf,
    text_pdf,
    tiff_of,
    word_recall,
)
from tests.support.stack import Stack

TWO = generated()[:2]
LINES = ["Scanline reads born-digital PDFs too", "the quick brown fox jumps over the lazy dog"]


@pytest.fixture(scope="module")
def carol(stack: Stack) -> OcrClient:
    return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="carol")


@pytest.fixture(scope="module")
def dave(stack: Stack) -> OcrClient:
    return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="dave")


def send(client: OcrClient, data: bytes, **fields: str) -> requests.Response:
    return requests.post(client.url, headers=client.auth, timeout=60, data=fields,
                         files={"file": ("document", data, "application/octet-stream")})


def read(client: OcrClient, data: bytes, **fields: str) -> dict:  # type: ignore[type-arg]
    r = send(client, data, **fields)
    assert r.status_code == 202, r.text
    job = client.wait_done(r.json()["job_id"], timeout=120)
    assert job["status"] == "done", job
    return job


@pytest.mark.parametrize("make", [scanned_pdf, tiff_of], ids=["pdf", "tiff"])
def test_two_scanned_pages_are_two_pages_of_confident_words(carol: OcrClient, make) -> None:  # type: ignore[no-untyped-def]
    job = read(carol, make(page_images(TWO)))
    assert [p["page"] for p in job["pages"]] == [1, 2]
    for page, sample in zip(job["pages"], TWO, strict=True):
        assert word_recall(sample.truth, page["text"]) == 1.0
        words = [w for line in page["lines"] for w in line["words"]]
        assert words and all(0.8 < w["confidence"] <= 1 for w in words)
    assert job["text"].split("\f") == [p["text"] for p in job["pages"]]


def test_a_born_digital_pdf_gives_its_text(carol: OcrClient) -> None:
    assert word_recall("\n".join(LINES), read(carol, text_pdf(LINES))["text"]) == 1.0


def test_german_with_its_language_and_an_unknown_language(carol: OcrClient) -> None:
    sample = german()
    job = read(carol, sample.data, languages="deu")
    assert job["languages"] == "deu" and word_recall(sample.truth, job["text"]) >= 0.95
    r = send(carol, sample.data, languages="tlh")
    assert r.status_code == 422 and "unknown language" in r.json()["detail"]
    # keras-ocr reads English only, and this stack has no keras-ocr weights: both refused
    # at the request, not as a failed job that spent a quota.
    r = send(carol, sample.data, languages="deu", engine="keras-ocr")
    assert r.status_code == 422, r.text
    r = send(carol, sample.data, engine="keras-ocr")
    assert r.status_code == 422 and "not available" in r.json()["detail"]


def test_a_page_turned_90_degrees_is_read_upright(carol: OcrClient) -> None:
    sample = generated()[0]
    out = io.BytesIO()
    Image.open(io.BytesIO(sample.data)).rotate(90, expand=True).save(out, "PNG")
    job = read(carol, out.getvalue())
    assert job["pages"][0]["angle"] in (90, 270)
    assert word_recall(sample.truth, job["text"]) >= 0.95


def test_locked_and_oversized_documents_are_refused_at_upload(carol: OcrClient) -> None:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(text_pdf(LINES))) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    for data, status in ((out.getvalue(), 422), (blank_pages_pdf(10_000), 413),
                         (blank_pages_pdf(1, 100_000, 100_000), 413),
                         (chained_tiff(100_000), 413)):
        r = send(carol, data)
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"] == "application/problem+json"


def test_outputs_for_the_owner_and_404_for_anyone_else(carol: OcrClient,
                                                       dave: OcrClient) -> None:
    job = read(carol, scanned_pdf(page_images(TWO)))
    base = f"{carol.url}/{job['job_id']}"
    text = requests.get(f"{base}/text", headers=carol.auth, timeout=30)
    assert text.headers["Content-Type"].startswith("text/plain") and text.text == job["text"]
    answer = requests.get(f"{base}/hocr", headers=carol.auth, timeout=30)
    # Inert in a browser, whatever the recognised text says.
    assert answer.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    hocr = ET.fromstring(answer.content)
    assert len(hocr.findall(".//*[@class='ocrx_word']")) == len(job["words"])
    pdf = requests.get(f"{base}/pdf", headers=carol.auth, timeout=30)
    assert pdf.headers["Content-Type"] == "application/pdf"
    found = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True,
                           check=True).stdout.decode()
    assert word_recall(TWO[0].truth + "\n" + TWO[1].truth, found) == 1.0
    for output in ("text", "hocr", "pdf"):
        assert requests.get(f"{base}/{output}", headers=dave.auth, timeout=30).status_code == 404


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_the_searchable_pdf_of_an_image_holds_the_image_as_it_was_uploaded(
        carol: OcrClient, kind: str) -> None:
    """As OCRmyPDF: the page image is not encoded again (a PNG would come back lossy, a
    JPEG twice lossy)."""
    upload = io.BytesIO()
    Image.open(io.BytesIO(TWO[0].data)).convert("RGB").save(upload, kind)
    job = read(carol, upload.getvalue())
    pdf = requests.get(f"{carol.url}/{job['job_id']}/pdf", headers=carol.auth, timeout=30)
    with pikepdf.open(io.BytesIO(pdf.content)) as document:
        (image,) = document.pages[0].images.values()
        if kind == "JPEG":
            assert image.read_raw_bytes() == upload.getvalue()
        else:
            embedded = pikepdf.PdfImage(image).as_pil_image()
            assert embedded.tobytes() == Image.open(upload).convert("RGB").tobytes()

