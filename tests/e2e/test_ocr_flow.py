"""The OCR path through the gateway, as a user drives it: sign up, upload, poll, get mail."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.ocr_client import OcrClient
from bench.ocr_samples import generated, padded_png, word_recall
from infra.local.environment import function_environment
from scanline.auth import KeyRing, TokenSettings, TokenSigner
from scanline.clock import FixedClock
from scanline.payloads import OcrRequested
from scanline.secrets import Secrets
from scanline.settings import Settings
from tests.support.broker import EventTap
from tests.support.mailbox import Mailbox
from tests.support.stack import Stack

SAMPLE = generated()[0]


@pytest.fixture(scope="module")
def alice(stack: Stack) -> OcrClient:
    return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="alice")


@pytest.fixture(scope="module")
def bob(stack: Stack) -> OcrClient:
    return OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="bob")


def test_upload_is_read_and_the_owner_is_mailed_where_to_find_it(alice: OcrClient,
                                                                mailbox: Mailbox) -> None:
    r = alice.upload(SAMPLE.data)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    job = alice.wait_done(r.json()["job_id"])
    assert job["status"] == "done", job
    assert word_recall(SAMPLE.truth, job["text"]) == 1.0
    assert job["engine"] in ("tesseract", "keras-ocr") and job["error"] is None
    assert job["words"] and all(len(w["box"]) == 4 for w in job["words"])
    mail = mailbox.wait_for(to=alice.email, subject=job["job_id"], timeout=20)
    body = mail.get_body(("plain",)).get_content()
    # Where the results are, never the document's words themselves.
    assert f"/function/ocr-jobs/{job['job_id']}/text" in body
    assert not set(SAMPLE.truth.split()) & set(body.split())
    listed = requests.get(alice.url, headers=alice.auth, timeout=10).json()["jobs"]
    assert job["job_id"] in [j["job_id"] for j in listed]


def test_presigned_flow(alice: OcrClient) -> None:
    r = alice.presign("image/png", len(SAMPLE.data))
    assert r.status_code == 201, r.text
    body = r.json()
    assert alice.post_upload(body, SAMPLE.data).status_code == 204
    assert alice.submit(body["job_id"]).status_code == 202
    job = alice.wait_done(body["job_id"])
    assert job["status"] == "done" and word_recall(SAMPLE.truth, job["text"]) == 1.0


def test_another_users_job_is_404(alice: OcrClient, bob: OcrClient) -> None:
    job_id = alice.upload(SAMPLE.data).json()["job_id"]
    assert bob.get(job_id).status_code == 404
    assert bob.submit(job_id).status_code == 404
    assert alice.get(job_id).status_code == 200


def test_too_large_and_not_an_image(alice: OcrClient) -> None:
    big = alice.upload(b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024))
    assert big.status_code == 413
    assert big.headers["Content-Type"] == "application/problem+json"
    assert alice.upload(b"%PDF-1.7 not an image", "x.pdf", "application/pdf").status_code == 415


def test_missing_forged_and_expired_tokens_are_401(stack: Stack, alice: OcrClient) -> None:
    url = alice.url
    files = {"file": ("a.png", SAMPLE.data, "image/png")}
    assert requests.post(url, files=files, timeout=10).status_code == 401
    forged = alice.token[:-4] + ("AAAA" if not alice.token.endswith("AAAA") else "BBBB")
    assert requests.post(url, files=files, timeout=10,
                         headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    settings = TokenSettings.from_settings(Settings.from_env(function_environment("ocr-jobs")))
    an_hour_ago = FixedClock(datetime.now(UTC) - timedelta(hours=1))
    expired = TokenSigner(KeyRing.from_secrets(Secrets(stack.secrets_dir)), settings,
                          an_hour_ago).issue("someone", "session-1")
    # Alice's identity, well-formed, but signed by a key the token function does not publish.
    subject = jwt.decode(alice.token, options={"verify_signature": False})["sub"]
    foreign = TokenSigner(KeyRing(Ed25519PrivateKey.generate()), settings,
                          FixedClock(datetime.now(UTC))).issue(subject, "session-1")
    for token in (expired, foreign):
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 401 and r.headers["Content-Type"] == "application/problem+json"
    assert requests.get(url, headers=alice.auth, timeout=10).status_code == 200


def test_the_message_for_a_10_mib_image_is_under_2_kib(alice: OcrClient, tap: EventTap) -> None:
    image = padded_png(10 * 1024 * 1024)
    assert len(image) >= 10 * 1024 * 1024
    with tap.listen(OcrRequested.TYPE) as received:
        r = alice.upload(image)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        received.wait_until(lambda e: e.subject == job_id, timeout=20)
        raw = next(b for b, e in zip(received.raw, received.events, strict=True)
                   if e.subject == job_id)
    assert len(raw) < 2048
    assert alice.wait_done(job_id, timeout=90)["status"] == "done"


def test_wait_holds_the_answer_until_the_job_ends(alice: OcrClient) -> None:
    job_id = alice.upload(SAMPLE.data).json()["job_id"]
    started = time.monotonic()
    job = alice.get(job_id, wait=20).json()
    assert job["status"] == "done" and time.monotonic() - started < 20
