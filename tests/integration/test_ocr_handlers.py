"""ocr-jobs and ocr in-process, against the real PostgreSQL, S3 server and RabbitMQ.

The ocr handler is driven with events built here (not through the broker), so the stack's
own ocr process never races these tests for a job.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.datastructures import MultiDict

from bench.ocr_samples import blank_pages_pdf, generated, word_recall
from infra.local.environment import function_environment
from scanline.adapters.job_watch import JobWatch
from scanline.adapters.ocr_jobs_repository import OcrJobs
from scanline.adapters.ocr_jobs_tables import ocr_jobs
from scanline.adapters.pg_listener import Listener
from scanline.bootstrap import Container
from scanline.domain import ocr
from scanline.errors import NotFound
from scanline.events import Event
from scanline.payloads import EmailRequested, OcrCompleted, OcrRequested
from scanline.runtime.app import create_app
from scanline.settings import Settings
from tests.support.broker import EventTap
from tests.support.jwks_server import serving
from tests.support.signing import signed, signed_data
from tests.support.tcpproxy import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE = generated()[0]


def load_handler(function: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"handler_{function.replace('-', '_')}", REPO / "functions" / function / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Function:
    client: FlaskClient
    deps: Container


def function(name: str, **env: str) -> Iterator[Function]:
    deps = Container(Settings.from_env({**function_environment(name), "FUNCTION_NAME": name,
                                        **env}))
    yield Function(create_app(load_handler(name), deps).test_client(), deps)
    deps.close()


@pytest.fixture
def jobs_fn(stack: object) -> Iterator[Function]:
    yield from function("ocr-jobs", OCR_MAX_UPLOAD_BYTES="200000")


@pytest.fixture
def jobs_fn_without_keys(stack: object) -> Iterator[Function]:
    """ocr-jobs whose JWKS answers without a usable key."""
    with serving({"keys": []}) as jwks:
        yield from function("ocr-jobs", JWKS_URL=jwks.url)


@pytest.fixture
def ocr_fn(stack: object) -> Iterator[Function]:
    yield from function("ocr", OCR_ENGINE="tesseract")


def new_user(deps: Container) -> tuple[str, str, dict[str, str]]:
    email = f"ocr-it-{uuid.uuid4().hex[:10]}@example.com"
    with deps.unit_of_work() as uow:
        user_id = uow.users.create(email=email, name="it", password_hash="x",
                                   now=datetime.now(UTC))
    token = deps.signer.issue(str(user_id), str(uuid.uuid4()))
    return str(user_id), email, {"Authorization": f"Bearer {token}"}


def upload(fn: Function, headers: dict[str, str], data: bytes, name: str = "a.png"):  # type: ignore[no-untyped-def]
    return fn.client.post("/", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(data), name)})


def staged_job(deps: Container, user_id: str, data: bytes, status: str = ocr.QUEUED,
               content_type: str = "image/png", **asked: Any) -> str:
    """A job as ocr-jobs leaves it, without its event (so no stack process picks it up)."""
    job_id = str(uuid.uuid4())
    key = ocr.object_key(user_id, job_id)
    deps.store.put(key, data, content_type)
    with deps.unit_of_work() as uow:
        uow.jobs.create(job_id=job_id, user_id=user_id, status=status, object_key=key,
                        content_type=content_type, size=len(data), **asked)
    return job_id


def requested(fn: Function, job_id: str, user_id: str, **changes: Any) -> Event:
    """``ocr.requested`` as ocr-jobs signs it."""
    return signed(OcrRequested(bucket=fn.deps.store.bucket, key=ocr.object_key(user_id, job_id),
                               job_id=job_id, user_id=user_id), "ocr-jobs", subject=job_id,
                  **changes)


def deliver(fn: Function, job_id: str, user_id: str, event_id: str | None = None):  # type: ignore[no-untyped-def]
    event = requested(fn, job_id, user_id, **({"id": event_id} if event_id else {}))
    return fn.client.post("/", data=event.to_structured(),
                          content_type="application/cloudevents+json")


def job_row(deps: Container, job_id: str) -> ocr.Job:
    with deps.unit_of_work() as uow:
        found = uow.jobs.get(job_id)
    assert found is not None
    return found


def claimed(deps: Container, job_id: str, lease: timedelta = timedelta(seconds=30)) -> str:
    """Claim a job as a worker would; returns the lease token."""
    with deps.unit_of_work() as uow:
        claim = uow.jobs.claim(job_id, now=datetime.now(UTC), lease=lease)
    assert claim.token is not None
    return claim.token


# --- ocr-jobs --------------------------------------------------------------------------

def test_upload_stages_the_object_and_emits_only_references(jobs_fn: Function,
                                                            tap: EventTap) -> None:
    user_id, _, auth = new_user(jobs_fn.deps)
    with tap.listen(OcrRequested.TYPE) as received:
        r = upload(jobs_fn, auth, SAMPLE.data, name="../../etc/passwd")
        assert r.status_code == 202, r.json
        job_id = r.json["job_id"]
        event = received.wait_until(lambda e: e.subject == job_id)
    assert r.json["status"] == "queued"
    assert r.json["status_url"].endswith(f"/function/ocr-jobs/{job_id}")
    assert event.data == {"bucket": jobs_fn.deps.store.bucket, "job_id": job_id,
                          "user_id": user_id, "key": f"uploads/{user_id}/{job_id}"}
    row = job_row(jobs_fn.deps, job_id)
    assert (row.user_id, row.content_type, row.size) == (user_id, "image/png", len(SAMPLE.data))


@pytest.mark.parametrize(("data", "status"), [
    (b"plain text, not an image", 415), (b"", 415), (b"\x89PNG" + b"\0" * 300_000, 413)])
def test_upload_refusals(jobs_fn: Function, data: bytes, status: int) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    r = upload(jobs_fn, auth, data)
    assert r.status_code == status and r.content_type == "application/problem+json"
    if status == 413:  # read only to the limit: the true size is not known, nor claimed
        assert r.json["detail"] == "the file is over 200000 bytes; the limit is 200000 bytes"


def test_missing_file_field_and_bad_tokens(jobs_fn: Function) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    r = jobs_fn.client.post("/", headers=auth, content_type="multipart/form-data",
                            data={"other": (io.BytesIO(SAMPLE.data), "a.png")})
    assert r.status_code == 422
    assert upload(jobs_fn, {}, SAMPLE.data).status_code == 401
    assert upload(jobs_fn, {"Authorization": "Bearer x.y.z"}, SAMPLE.data).status_code == 401
    assert jobs_fn.client.get(f"/{uuid.uuid4()}").status_code == 401


def test_no_verification_keys_is_503_not_401(jobs_fn_without_keys: Function) -> None:
    _, _, auth = new_user(jobs_fn_without_keys.deps)
    r = jobs_fn_without_keys.client.get("/", headers=auth)
    assert r.status_code == 503 and r.content_type == "application/problem+json"
    assert r.headers["Retry-After"]


def test_an_upload_names_each_part_once_and_only_parts_it_knows(jobs_fn: Function) -> None:
    """A second copy of a part, or a part the operation does not take, is refused: the
    job would otherwise have run with one copy picked silently (eng of eng and xyz)."""
    _, _, auth = new_user(jobs_fn.deps)

    def sent(*parts: tuple[str, Any]) -> Any:
        return jobs_fn.client.post("/", headers=auth, content_type="multipart/form-data",
                                   data=MultiDict(parts))

    def document() -> tuple[io.BytesIO, str]:
        return io.BytesIO(SAMPLE.data), "a.png"

    twice = sent(("file", document()), ("languages", "eng"), ("languages", "xyz"))
    assert twice.status_code == 400 and "languages" in twice.json["detail"]
    assert sent(("file", document()), ("file", document())).status_code == 400
    assert sent(("file", document()), ("languages", "eng"),
                ("languages", document())).status_code == 400  # as a field and as a file
    unknown = sent(("file", document()), ("foo", "bar"))
    assert unknown.status_code == 422 and "foo" in str(unknown.json)
    assert sent(("file", document()), ("extra", document())).status_code == 422
    assert sent(("file", document()), ("languages", "eng")).status_code == 202


def test_jobs_are_visible_to_their_owner_only(jobs_fn: Function) -> None:
    owner_id, _, owner = new_user(jobs_fn.deps)
    _, _, other = new_user(jobs_fn.deps)
    job_id = staged_job(jobs_fn.deps, owner_id, SAMPLE.data)
    assert jobs_fn.client.get(f"/{job_id}", headers=owner).json["status"] == "queued"
    assert jobs_fn.client.get(f"/{job_id}", headers=other).status_code == 404
    assert jobs_fn.client.get(f"/{uuid.uuid4()}", headers=owner).status_code == 404
    assert [j["job_id"] for j in jobs_fn.client.get("/", headers=owner).json["jobs"]] == [job_id]
    assert jobs_fn.client.delete(f"/{job_id}", headers=other).status_code == 404
    assert jobs_fn.client.get("/", headers=other).json["jobs"] == []
    assert jobs_fn.client.get(f"/{job_id}?wait=31", headers=owner).status_code == 422


def test_wait_returns_as_soon_as_the_job_ends(jobs_fn: Function) -> None:
    owner_id, _, owner = new_user(jobs_fn.deps)
    job_id = staged_job(jobs_fn.deps, owner_id, SAMPLE.data)
    token = claimed(jobs_fn.deps, job_id)

    def finish() -> None:
        time.sleep(0.5)
        with jobs_fn.deps.unit_of_work() as uow:
            uow.jobs.complete(job_id, token, engine="tesseract", text="hi", words=[],
                              timings={})

    threading.Thread(target=finish).start()
    started = time.monotonic()
    r = jobs_fn.client.get(f"/{job_id}?wait=10", headers=owner)
    assert r.json["status"] == "done" and r.json["text"] == "hi"
    assert 0.4 < time.monotonic() - started < 2


def watching(deps: Container, listener: Callable[[], Listener] | None = None) -> JobWatch:
    """A job watch that never polls on its own in a test's time: only a notification (or
    the look at a new waiter's job) can end a wait early."""
    return JobWatch(deps.unit_of_work, listener or (lambda: deps.db.listener(OcrJobs.ENDED)),
                    per_user=4, per_process=8, poll=60, fallback_poll=60)


def timed_wait(watch: JobWatch, job_id: str, timeout: float) -> Callable[[], float]:
    """Start waiting in a thread; the returned call joins it and gives when it returned."""
    ended: list[float] = []
    waiter = threading.Thread(target=lambda: (watch.wait(job_id, timeout),
                                              ended.append(time.monotonic())))
    waiter.start()

    def joined() -> float:
        waiter.join(timeout + 5)
        return ended[0]
    return joined


def test_a_waiter_hears_its_job_end_and_its_deletion_at_once(jobs_fn: Function) -> None:
    deps = jobs_fn.deps
    owner_id, _, _ = new_user(deps)
    done_job, deleted_job = (staged_job(deps, owner_id, SAMPLE.data) for _ in range(2))
    token = claimed(deps, done_job)
    watch = watching(deps)
    done_at, deleted_at = timed_wait(watch, done_job, 20), timed_wait(watch, deleted_job, 20)
    time.sleep(1)  # both registered, the watch listening
    with deps.unit_of_work() as uow:
        uow.jobs.complete(done_job, token, engine="tesseract", text="hi", timings={})
    committed = time.monotonic()
    assert done_at() - committed < 0.5
    with deps.unit_of_work() as uow:
        assert uow.jobs.delete_owned(deleted_job, owner_id, datetime.now(UTC)) is not None
    committed = time.monotonic()
    assert deleted_at() - committed < 0.5


def test_a_job_that_ended_before_its_waiter_came_is_not_waited_for(jobs_fn: Function) -> None:
    """Its end was notified while the watch listened for another job's: nobody waited
    for it then, so the new waiter must look."""
    deps = jobs_fn.deps
    owner_id, _, _ = new_user(deps)
    other, job_id = (staged_job(deps, owner_id, SAMPLE.data) for _ in range(2))
    watch = watching(deps)
    other_ended = timed_wait(watch, other, 3)
    time.sleep(1)  # the watch is listening
    with deps.unit_of_work() as uow:
        uow.jobs.complete(job_id, claimed(deps, job_id), engine="tesseract", text="hi",
                          timings={})
    time.sleep(0.5)  # its notification has come and gone
    started = time.monotonic()
    watch.wait(job_id, 20)
    assert time.monotonic() - started < 0.5
    other_ended()


def test_waits_poll_when_postgresql_cannot_be_listened_to(jobs_fn: Function) -> None:
    deps = jobs_fn.deps
    owner_id, _, _ = new_user(deps)
    job_id = staged_job(deps, owner_id, SAMPLE.data)
    token = claimed(deps, job_id)
    nowhere = Listener({"host": "127.0.0.1", "port": free_port(), "user": "nobody"},
                       OcrJobs.ENDED, timeout=1)
    watch = JobWatch(deps.unit_of_work, lambda: nowhere, per_user=4, per_process=8,
                     poll=60, fallback_poll=0.05)
    ended_at = timed_wait(watch, job_id, 20)
    time.sleep(0.5)
    with deps.unit_of_work() as uow:
        uow.jobs.complete(job_id, token, engine="tesseract", text="hi", timings={})
    committed = time.monotonic()
    assert ended_at() - committed < 0.5


def post_upload(presigned: dict[str, Any], data: bytes) -> requests.Response:
    """The client's browser-based POST to S3, as the presign answer tells it to."""
    return requests.post(presigned["upload_url"], data=presigned["upload_fields"],
                         files={"file": ("doc", data)}, timeout=10)


def test_presigned_upload_then_submit(jobs_fn: Function, tap: EventTap) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    r = jobs_fn.client.post("/", headers=auth, json={"content_type": "image/png",
                                                     "size": len(SAMPLE.data)})
    assert r.status_code == 201 and r.json["expires_in"] == 900
    job_id = r.json["job_id"]
    assert r.json["submit_url"].endswith(f"/function/ocr-jobs/{job_id}/submit")
    assert jobs_fn.client.post(f"/{job_id}/submit", headers=auth).status_code == 409
    assert post_upload(r.json, SAMPLE.data).status_code == 204
    with tap.listen(OcrRequested.TYPE) as received:
        assert jobs_fn.client.post(f"/{job_id}/submit", headers=auth).status_code == 202
        received.wait_until(lambda e: e.subject == job_id)
        assert jobs_fn.client.post(f"/{job_id}/submit", headers=auth).status_code == 202
        time.sleep(0.5)
        assert len([e for e in received.events if e.subject == job_id]) == 1
    assert job_row(jobs_fn.deps, job_id).upload_etag


def test_presigned_upload_of_the_wrong_type_or_size_is_refused(jobs_fn: Function) -> None:
    user_id, _, auth = new_user(jobs_fn.deps)
    assert jobs_fn.client.post("/", headers=auth, json={
        "content_type": "image/png", "size": 10**9}).status_code == 413
    assert jobs_fn.client.post("/", headers=auth, json={
        "content_type": "image/gif", "size": 10}).status_code == 422
    # Declared a JPEG of its size, stored a PNG: the object is refused at submit and gone.
    r = jobs_fn.client.post("/", headers=auth, json={"content_type": "image/jpeg",
                                                     "size": len(SAMPLE.data)})
    assert post_upload(r.json, SAMPLE.data).status_code == 204
    job_id = r.json["job_id"]
    refused = jobs_fn.client.post(f"/{job_id}/submit", headers=auth)
    assert refused.status_code == 415 and "image/jpeg" in refused.json["detail"]
    with pytest.raises(NotFound):
        jobs_fn.deps.store.head(ocr.object_key(user_id, job_id))
    assert job_row(jobs_fn.deps, job_id).status == "failed"
    again = jobs_fn.client.post(f"/{job_id}/submit", headers=auth)
    assert again.status_code == 409 and "refused" in again.json["detail"]


# --- ocr ------------------------------------------------------------------------------

def test_a_job_that_asks_for_no_mail_ends_without_one(ocr_fn: Function, jobs_fn: Function,
                                                     tap: EventTap) -> None:
    """An API client that polls, waits or takes a callback need not get a mail a job."""
    user_id, email, auth = new_user(jobs_fn.deps)
    asked = jobs_fn.client.post("/", headers=auth, json={"content_type": "image/png",
                                                         "size": 100, "notify": "none"})
    assert asked.status_code == 201, asked.json
    assert job_row(jobs_fn.deps, asked.json["job_id"]).notify == "none"
    view = jobs_fn.client.get(f"/{asked.json['job_id']}", headers=auth).json
    assert view["notify"] == "none"
    refused = jobs_fn.client.post("/", headers=auth, json={"content_type": "image/png",
                                                           "size": 100, "notify": "sms"})
    assert refused.status_code == 422
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data, notify="none")
    with tap.listen(OcrCompleted.TYPE, EmailRequested.TYPE) as received:
        assert deliver(ocr_fn, job_id, user_id).json["status"] == "done"
        received.wait_until(lambda e: e.type == OcrCompleted.TYPE and e.subject == job_id)
        time.sleep(0.5)
    assert not [e for e in received.events if e.type == EmailRequested.TYPE
                and e.data["to"] == email]


def test_ocr_recognises_stores_emits_once_and_deletes_the_object(ocr_fn: Function,
                                                                 tap: EventTap) -> None:
    user_id, email, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data)
    with tap.listen(OcrCompleted.TYPE, EmailRequested.TYPE) as received:
        r = deliver(ocr_fn, job_id, user_id, event_id="same-delivery")
        assert r.status_code == 200 and r.json["status"] == "done"
        mail = received.wait_until(lambda e: e.type == EmailRequested.TYPE
                                   and e.data["to"] == email)
        done = received.wait_until(lambda e: e.subject == job_id)
        again = deliver(ocr_fn, job_id, user_id)  # a duplicate of the message
        assert again.status_code == 200 and again.json["status"] == "ignored"
        time.sleep(0.5)
        mails = [e for e in received.events if e.type == EmailRequested.TYPE
                 and e.data["to"] == email]
    assert len(mails) == 1 and job_id in mail.data["subject"]
    assert done.data["status"] == "done"
    row = job_row(ocr_fn.deps, job_id)
    assert row.status == "done" and row.engine == "tesseract" and row.attempts == 1
    assert word_recall(SAMPLE.truth, row.text or "") == 1.0
    assert f"/function/ocr-jobs/{job_id}/text" in mail.data["text"]
    assert "quick" not in mail.data["text"]  # the links, never the document's words
    assert row.all_words and all(len(w["box"]) == 4 for w in row.all_words)
    assert {"fetch_ms", "decode_ms", "engine_ms", "pdf_ms", "batch_size"} <= set(row.timings or {})
    with pytest.raises(NotFound):
        ocr_fn.deps.store.head(row.object_key)
    ocr_fn.deps.store.head(ocr.pdf_key(user_id, job_id))  # the searchable PDF stays


def test_a_job_left_processing_by_a_killed_worker_is_redone(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data, status=ocr.PROCESSING)
    assert deliver(ocr_fn, job_id, user_id).json["status"] == "done"
    assert job_row(ocr_fn.deps, job_id).status == "done"


def test_an_undecodable_image_fails_the_job_and_is_not_retried(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data[:400])
    r = deliver(ocr_fn, job_id, user_id)
    assert r.status_code == 415  # 4xx: the trigger dead-letters it
    row = job_row(ocr_fn.deps, job_id)
    assert row.status == "failed" and "truncated or corrupt" in (row.error or "")


def test_a_job_that_keeps_crashing_gives_up(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data, status=ocr.PROCESSING)
    with ocr_fn.deps.db.connect() as conn:
        conn.execute(ocr_jobs.update().where(ocr_jobs.c.id == job_id).values(attempts=5))
    assert job_row(ocr_fn.deps, job_id).attempts == 5
    assert deliver(ocr_fn, job_id, user_id).status_code == 422
    assert "gave up after 5 attempts" in (job_row(ocr_fn.deps, job_id).error or "")


def _blank_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (side, side), 255).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(("data", "content_type"), [
    (blank_pages_pdf(2), "application/pdf"),
    (_blank_png(6000), "image/png"),  # 36 Mpx, within the 40 Mpx a page may have
], ids=["two blank PDF pages", "a blank 6000x6000 PNG"])
def test_blank_pages_are_read_as_no_text(ocr_fn: Function, data: bytes,
                                         content_type: str) -> None:
    """tesserocr raises for a page with nothing on it; such a job used to crash on every
    attempt and stay ``processing``."""
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, data, content_type=content_type)
    r = deliver(ocr_fn, job_id, user_id)
    assert (r.status_code, r.json["status"]) == (200, "done"), r.json
    row = job_row(ocr_fn.deps, job_id)
    assert row.status == ocr.DONE and row.text.strip() == ""


@pytest.fixture
def ocr_fn_without_s3(stack: object) -> Iterator[Function]:
    """The ocr function while its S3 is unreachable (a closed port)."""
    yield from function("ocr", OCR_ENGINE="tesseract",
                        S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")


def test_an_attempt_that_fails_on_our_side_hands_the_job_back_at_once(
        ocr_fn: Function, ocr_fn_without_s3: Function) -> None:
    """A retried attempt must not find its own dead attempt's lease: every redelivery
    would answer 503 (busy) until the broker's delivery limit dead-lettered the message,
    and the job would stay ``processing`` for ever."""
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data)
    assert deliver(ocr_fn_without_s3, job_id, user_id).status_code == 503
    row = job_row(ocr_fn.deps, job_id)
    assert (row.status, row.attempts) == (ocr.PROCESSING, 1)
    r = deliver(ocr_fn, job_id, user_id)  # the redelivery, S3 back
    assert (r.status_code, r.json["status"]) == (200, "done"), r.json
    assert job_row(ocr_fn.deps, job_id).attempts == 2


def test_an_event_that_does_not_match_its_job_is_refused_before_the_claim(
        ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data)
    assert deliver(ocr_fn, job_id, str(uuid.uuid4())).status_code == 400
    row = job_row(ocr_fn.deps, job_id)
    assert (row.status, row.attempts) == (ocr.QUEUED, 0)  # untouched


def test_an_event_for_a_job_that_does_not_exist_changes_nothing(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = str(uuid.uuid4())
    r = deliver(ocr_fn, job_id, user_id)
    assert (r.status_code, r.json["status"]) == (200, "ignored")
    with ocr_fn.deps.unit_of_work() as uow:
        assert uow.jobs.get(job_id) is None


def test_a_duplicate_while_a_live_worker_holds_the_job_is_retried_not_run(
        ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data)
    claimed(ocr_fn.deps, job_id)  # a live worker elsewhere
    for _ in range(4):  # the forged-parallel-deliveries attack of the trust issue
        r = deliver(ocr_fn, job_id, user_id)
        assert r.status_code == 503 and r.headers["Retry-After"] == "15"
    row = job_row(ocr_fn.deps, job_id)
    assert (row.status, row.attempts, row.error) == (ocr.PROCESSING, 1, None)


def test_a_job_whose_lease_ran_out_is_taken_over_and_the_old_worker_cannot_finish(
        ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data)
    dead_worker = claimed(ocr_fn.deps, job_id, lease=timedelta(seconds=-1))
    assert deliver(ocr_fn, job_id, user_id).json["status"] == "done"
    with ocr_fn.deps.unit_of_work() as uow:
        assert uow.jobs.complete(job_id, dead_worker, engine="x", text="late", words=[],
                                 timings={}) is False
    row = job_row(ocr_fn.deps, job_id)
    assert (row.status, row.attempts) == (ocr.DONE, 2) and row.text != "late"


def test_an_unsigned_or_forged_request_changes_no_job(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data)
    event = requested(ocr_fn, job_id, user_id)
    unsigned = dataclasses.replace(event, extensions={})
    as_ocr = signed_data(OcrRequested.TYPE, event.data, "ocr", subject=job_id)
    for forged in (unsigned, as_ocr):
        r = ocr_fn.client.post("/", data=forged.to_structured(),
                               content_type="application/cloudevents+json")
        assert r.status_code == 401
    row = job_row(ocr_fn.deps, job_id)
    assert (row.status, row.attempts) == (ocr.QUEUED, 0)
