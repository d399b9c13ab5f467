"""Documents end to end in-process (ocr-jobs and ocr against the real PostgreSQL, S3 and
RabbitMQ): PDFs and multi-page TIFFs, languages, orientation, the limits, and the owner's
text, hOCR and searchable PDF. Jobs to be read are staged without their event (the stack's
own ocr process must not race these tests for them) and delivered to ocr in-process."""

from __future__ import annotations

import io
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pikepdf
import pytest
from PIL import Image

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
from scanline.domain import ocr
from tests.integration.test_ocr_handlers import (
    Function,
    deliver,
    function,
    job_row,
    new_user,
    staged_job,
    upload,
)

TWO = generated()[:2]
LINES = ["Scanline reads born-digital PDFs too", "the quick brown fox jumps over the lazy dog"]


@pytest.fixture
def jobs_fn(stack: object):  # type: ignore[no-untyped-def]
    yield from function("ocr-jobs")


@pytest.fixture
def ocr_fn(stack: object):  # type: ignore[no-untyped-def]
    yield from function("ocr", OCR_ENGINE="tesseract")


def encrypted(user: str) -> bytes:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(text_pdf(LINES))) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user=user, owner="owner"))
    return out.getvalue()


def done(ocr_fn: Function, data: bytes, content_type: str,
         **asked: str) -> tuple[str, str, ocr.Job]:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, data, content_type=content_type, **asked)
    r = deliver(ocr_fn, job_id, user_id)
    assert r.status_code == 200, r.json
    return user_id, job_id, job_row(ocr_fn.deps, job_id)


@pytest.mark.parametrize(("make", "content_type"), [
    (scanned_pdf, "application/pdf"), (tiff_of, "image/tiff")])
def test_two_pages_become_two_pages_of_confident_words(ocr_fn: Function, make, content_type: str  # type: ignore[no-untyped-def]
                                                       ) -> None:
    _, _, job = done(ocr_fn, make(page_images(TWO)), content_type)
    assert job.status == ocr.DONE and job.pages is not None
    assert [p["page"] for p in job.pages] == [1, 2]
    for page, sample in zip(job.pages, TWO, strict=True):
        assert word_recall(sample.truth, page["text"]) == 1.0
        words = [w for line in page["lines"] for w in line["words"]]
        assert words and all(w["confidence"] > 0.8 for w in words)
        assert page["angle"] == 0 and page["width"] > 0
    assert (job.text or "").split("\f") == [p["text"] for p in job.pages]
    assert {w["page"] for w in job.all_words or []} == {1, 2}


def test_a_born_digital_pdf_gives_its_text(ocr_fn: Function) -> None:
    _, _, job = done(ocr_fn, text_pdf(LINES), "application/pdf")
    assert word_recall("\n".join(LINES), job.text or "") == 1.0
    assert job.pages and job.pages[0]["width"] == 2550  # US letter at 300 dpi
    assert abs(job.pages[0]["height"] - 3300) <= 1  # PDFium rounds up


def test_a_german_page_read_in_german(ocr_fn: Function) -> None:
    sample = german()
    _, _, job = done(ocr_fn, sample.data, sample.media_type, languages="deu")
    assert word_recall(sample.truth, job.text or "") >= 0.95


def test_a_sideways_page_is_read_upright(ocr_fn: Function) -> None:
    sample = generated()[0]
    out = io.BytesIO()
    Image.open(io.BytesIO(sample.data)).rotate(90, expand=True).save(out, "PNG")
    _, _, job = done(ocr_fn, out.getvalue(), "image/png")
    assert job.pages and job.pages[0]["angle"] in (90, 270)
    assert word_recall(sample.truth, job.text or "") >= 0.95


def test_a_job_asking_for_an_engine_the_deployment_lacks_fails_at_once(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, generated()[0].data, requested_engine="keras-ocr")
    assert deliver(ocr_fn, job_id, user_id).status_code == 422  # dead-lettered, not retried
    assert "keras-ocr" in (job_row(ocr_fn.deps, job_id).error or "")


def test_a_failed_jobs_outputs_say_why_there_are_none(ocr_fn: Function,
                                                     jobs_fn: Function) -> None:
    owner_id, _, owner = new_user(jobs_fn.deps)
    job_id = staged_job(ocr_fn.deps, owner_id, b"\x89PNG\r\n\x1a\n broken")
    assert deliver(ocr_fn, job_id, owner_id).status_code == 415
    answer = jobs_fn.client.get(f"/{job_id}/text", headers=owner)
    assert answer.status_code == 409 and "failed and has no results" in answer.json["detail"]


def test_outputs_are_the_owners_only(ocr_fn: Function, jobs_fn: Function) -> None:
    owner_id, _, owner = new_user(jobs_fn.deps)
    _, _, other = new_user(jobs_fn.deps)
    job_id = staged_job(ocr_fn.deps, owner_id, scanned_pdf(page_images(TWO)),
                        content_type="application/pdf")
    for output in ("text", "hocr", "pdf"):
        assert jobs_fn.client.get(f"/{job_id}/{output}", headers=owner).status_code == 409
    assert deliver(ocr_fn, job_id, owner_id).status_code == 200
    text = jobs_fn.client.get(f"/{job_id}/text", headers=owner)
    assert text.content_type.startswith("text/plain")
    assert text.get_data(as_text=True).split("\f")[1].split() == TWO[1].truth.split()
    hocr = ET.fromstring(jobs_fn.client.get(f"/{job_id}/hocr", headers=owner).get_data())
    words = hocr.findall(".//*[@class='ocrx_word']")
    assert [w.text for w in words] == (TWO[0].truth + " " + TWO[1].truth).split()
    pdf = jobs_fn.client.get(f"/{job_id}/pdf", headers=owner)
    assert pdf.content_type == "application/pdf"
    found = subprocess.run(["pdftotext", "-", "-"], input=pdf.get_data(), capture_output=True,
                           check=True).stdout.decode()
    assert word_recall(TWO[0].truth + "\n" + TWO[1].truth, found) == 1.0
    for output in ("text", "hocr", "pdf"):
        assert jobs_fn.client.get(f"/{job_id}/{output}", headers=other).status_code == 404
        assert jobs_fn.client.get(f"/{uuid.uuid4()}/{output}", headers=owner).status_code == 404
        assert jobs_fn.client.get(f"/{job_id}/{output}").status_code == 401


@pytest.mark.parametrize(("data", "status", "says"), [
    (encrypted("secret"), 422, "password"), (encrypted(""), 422, "encrypted"),
    (blank_pages_pdf(10_000), 413, "more than 50 pages"),
    (blank_pages_pdf(1, 100_000, 100_000), 413, "pixels"),
    (chained_tiff(100_000), 413, "more than 50 pages"),
    (chained_tiff(3, loop=True), 415, "loop")])
def test_documents_over_a_limit_or_locked_are_refused_at_upload(jobs_fn: Function, data: bytes,
                                                                status: int, says: str) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    r = upload(jobs_fn, auth, data, name="doc")
    assert r.status_code == status and says in r.json["detail"]
    assert r.content_type == "application/problem+json"


def test_a_stored_document_over_a_limit_fails_its_job_without_retries(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, blank_pages_pdf(10_000),
                        content_type="application/pdf")
    assert deliver(ocr_fn, job_id, user_id).status_code == 413
    assert "more than 50 pages" in (job_row(ocr_fn.deps, job_id).error or "")


def test_languages_and_engine_are_checked_before_anything_is_stored(jobs_fn: Function) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    sample = german()
    for fields, status in (({"languages": "klingon"}, 422), ({"languages": "eng+xyz"}, 422),
                           ({"languages": "ENG"}, 422), ({"languages": "en"}, 422),
                           ({"languages": "eng,deu"}, 422), ({"engine": "easyocr"}, 422)):
        r = jobs_fn.client.post("/", headers=auth, content_type="multipart/form-data",
                                data={"file": (io.BytesIO(sample.data), "a.png"), **fields})
        assert r.status_code == status, (fields, r.json)
        if "languages" in fields:  # whatever the mistake, the answer names the codes to use
            assert "choose from eng, deu" in r.json["detail"], r.json
        r = jobs_fn.client.post("/", headers=auth, json={"content_type": "image/png",
                                                         "size": 100, **fields})
        assert r.status_code == status, (fields, r.json)
    r = jobs_fn.client.post("/", headers=auth, json={"content_type": "application/pdf",
                                                     "size": 100, "languages": "deu+eng",
                                                     "engine": "tesseract"})
    assert r.status_code == 201
    row = job_row(jobs_fn.deps, r.json["job_id"])
    assert (row.languages, row.requested_engine) == ("deu+eng", "tesseract")
    view = jobs_fn.client.get(f"/{row.id}", headers=auth).json
    assert (view["languages"], view["requested_engine"], view["pages"]) == ("deu+eng",
                                                                            "tesseract", None)


def test_every_allowed_language_has_an_installed_model(ocr_fn: Function) -> None:
    service = ocr_fn.deps.ocr
    engine = service.engine_named("tesseract")
    engine.check_languages("+".join(service.config.allowed_languages))  # raises if not
    assert {"eng", "deu", "fra", "spa", "ita", "por"} <= set(service.config.allowed_languages)
