"""An OCR job's life against abuse, in-process, on the real PostgreSQL, S3 and RabbitMQ:
bound uploads, idempotency, quotas, waiting, callbacks, deletion, retention and listing.

Each protection has a test that fails without it: an upload over its declared size is
refused by the store, a document swapped after submit never reaches the engine, a key
replays its first answer, a quota answers 429, a callback arrives signed and only where
allowed, a deleted job leaves no object behind, an expired one is removed by housekeeping.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from cryptography.exceptions import InvalidSignature

from bench.ocr_samples import generated
from infra.local.environment import function_environment
from scanline.bootstrap import Container
from scanline.clock import FixedClock
from scanline.domain import ocr
from scanline.domain.rate_limits import HOUSEKEEPING_RUNS
from scanline.errors import NotFound
from scanline.runtime.app import create_app
from scanline.settings import Settings
from tests.integration.test_ocr_handlers import (
    Function,
    claimed,
    deliver,
    function,
    job_row,
    load_handler,
    new_user,
    post_upload,
    staged_job,
    upload,
)
from tests.support.callbacks import Receiver, verify
from tests.support.stack import Stack

SAMPLE = generated()[0]
OTHER = generated()[1]


@pytest.fixture
def jobs_fn(stack: object) -> Iterator[Function]:
    yield from function("ocr-jobs", OCR_MAX_UPLOAD_BYTES="200000")


@pytest.fixture
def ocr_fn(stack: object) -> Iterator[Function]:
    yield from function("ocr", OCR_ENGINE="tesseract", OCR_MAX_UPLOAD_BYTES="200000")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def presign(fn: Function, auth: dict[str, str], size: int, **extra: object):  # type: ignore[no-untyped-def]
    return fn.client.post("/", headers=auth, json={"content_type": "image/png", "size": size,
                                                   **extra})


def stored(fn: Function, key: str) -> bool:
    try:
        fn.deps.store.head(key)
    except NotFound:
        return False
    return True


# --- bound uploads ----------------------------------------------------------------------

def test_the_store_refuses_an_upload_over_its_declared_size_or_of_another_type(
        jobs_fn: Function) -> None:
    user_id, _, auth = new_user(jobs_fn.deps)
    r = presign(jobs_fn, auth, 1000)
    assert r.status_code == 201
    over = post_upload(r.json, b"\x89PNG" + b"\0" * 2000)
    assert over.status_code == 400 and "EntityTooLarge" in over.text
    fields = {**r.json["upload_fields"], "Content-Type": "image/jpeg"}
    assert requests.post(r.json["upload_url"], data=fields, files={"file": ("x", b"\xff\xd8")},
                         timeout=10).status_code == 403
    other_key = {**r.json["upload_fields"], "key": ocr.object_key(user_id, str(uuid.uuid4()))}
    assert requests.post(r.json["upload_url"], data=other_key, files={"file": ("x", b"x")},
                         timeout=10).status_code == 403
    assert not stored(jobs_fn, ocr.object_key(user_id, r.json["job_id"]))
    assert jobs_fn.client.post(f"/{r.json['job_id']}/submit", headers=auth).status_code == 409


def test_a_document_swapped_after_submit_never_reaches_the_engine(
        jobs_fn: Function, ocr_fn: Function, stack: Stack) -> None:
    user_id, _, auth = new_user(jobs_fn.deps)
    r = presign(jobs_fn, auth, max(len(SAMPLE.data), len(OTHER.data)))
    job_id = r.json["job_id"]
    assert post_upload(r.json, SAMPLE.data).status_code == 204
    stack.stop_program("trigger")  # the submit's event waits: this test is the worker
    try:
        assert jobs_fn.client.post(f"/{job_id}/submit", headers=auth).status_code == 202
        # The presigned POST is still valid: the client stores another document there.
        assert post_upload(r.json, OTHER.data).status_code == 204
        answer = deliver(ocr_fn, job_id, user_id)
    finally:
        stack.start_program("trigger")
    assert answer.status_code == 409
    job = job_row(ocr_fn.deps, job_id)
    assert job.status == "failed" and "changed after the job was submitted" in (job.error or "")
    assert job.text is None and job.pages is None


def test_the_worker_refuses_an_object_over_the_cap_from_its_length(ocr_fn: Function) -> None:
    user_id, _, _ = new_user(ocr_fn.deps)
    job_id = staged_job(ocr_fn.deps, user_id, SAMPLE.data + b"\0" * 300_000)
    answer = deliver(ocr_fn, job_id, user_id)
    assert answer.status_code == 413
    # The length came from the object's metadata: nothing was read to learn it.
    assert f"is {len(SAMPLE.data) + 300_000} bytes" in (job_row(ocr_fn.deps, job_id).error or "")


# --- idempotency and quotas -------------------------------------------------------------

def test_an_idempotency_key_replays_its_first_answer_for_its_user_only(
        jobs_fn: Function) -> None:
    _, _, alice = new_user(jobs_fn.deps)
    _, _, bob = new_user(jobs_fn.deps)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = upload(jobs_fn, {**alice, **key}, SAMPLE.data)
    again = upload(jobs_fn, {**alice, **key}, SAMPLE.data)
    assert first.status_code == again.status_code == 202
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    different = upload(jobs_fn, {**alice, **key}, OTHER.data)
    assert different.status_code == 409 and "Idempotency-Key" in different.json["detail"]
    theirs = upload(jobs_fn, {**bob, **key}, SAMPLE.data)
    assert theirs.status_code == 202 and theirs.json["job_id"] != first.json["job_id"]
    listed = jobs_fn.client.get("/", headers=alice).json["jobs"]
    assert [j["job_id"] for j in listed] == [first.json["job_id"]]
    presigned = presign(jobs_fn, {**bob, "Idempotency-Key": "p1"}, 100)
    assert presign(jobs_fn, {**bob, "Idempotency-Key": "p1"}, 100).json == presigned.json
    assert presign(jobs_fn, {**bob, "Idempotency-Key": "p1"}, 101).status_code == 409


def test_parallel_requests_with_one_key_make_one_job(jobs_fn: Function) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answers: list[str] = []

    def send() -> None:
        r = upload(jobs_fn, {**auth, **key}, SAMPLE.data)
        if r.status_code == 202:
            answers.append(r.json["job_id"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) >= 1 and len(set(answers)) == 1
    assert len(jobs_fn.client.get("/", headers=auth).json["jobs"]) == 1


def test_quotas_answer_429_and_refusals_cost_nothing(stack: object) -> None:
    for fn in function("ocr-jobs", OCR_JOBS_PER_HOUR="2",
                       OCR_BYTES_PER_DAY=str(3 * len(SAMPLE.data))):
        _, _, auth = new_user(fn.deps)
        assert upload(fn, auth, b"not a document").status_code == 415
        assert upload(fn, auth, SAMPLE.data).status_code == 202
        assert upload(fn, auth, SAMPLE.data).status_code == 202
        spent = upload(fn, auth, SAMPLE.data)
        assert spent.status_code == 429 and int(spent.headers["Retry-After"]) > 0
        assert "jobs an hour" in spent.json["detail"]
        _, _, other = new_user(fn.deps)
        big = presign(fn, other, 4 * len(SAMPLE.data))
        assert big.status_code == 429 and "bytes a day" in big.json["detail"]
        assert presign(fn, other, len(SAMPLE.data)).status_code == 201  # the 429 cost nothing


# --- waiting ----------------------------------------------------------------------------

def test_waits_are_capped_per_user_and_end_when_the_job_does(jobs_fn: Function) -> None:
    user_id, _, owner = new_user(jobs_fn.deps)
    job_id = staged_job(jobs_fn.deps, user_id, SAMPLE.data)
    token = claimed(jobs_fn.deps, job_id)
    held: list[int] = []

    def wait() -> None:
        held.append(jobs_fn.client.get(f"/{job_id}?wait=5", headers=owner).status_code)

    waiters = [threading.Thread(target=wait) for _ in range(2)]
    for t in waiters:
        t.start()
    time.sleep(0.3)
    started = time.monotonic()
    third = jobs_fn.client.get(f"/{job_id}?wait=5", headers=owner)
    assert third.status_code == 429 and third.headers["Retry-After"] == "1"
    assert time.monotonic() - started < 1
    assert jobs_fn.client.get(f"/{job_id}", headers=owner).status_code == 200  # no wait: fine
    with jobs_fn.deps.unit_of_work() as uow:
        uow.jobs.complete(job_id, token, engine="tesseract", text="hi", words=[], timings={})
    for t in waiters:
        t.join(timeout=3)
    assert held == [200, 200]


# --- callbacks ---------------------------------------------------------------------------

def test_a_callback_arrives_signed_with_the_published_keys(
        jobs_fn: Function, receiver: Receiver) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    r = jobs_fn.client.post("/", headers=auth, content_type="multipart/form-data",
                            data={"file": (io.BytesIO(SAMPLE.data), "a.png"),
                                  "callback_url": receiver.url})
    assert r.status_code == 202, r.json
    job_id = r.json["job_id"]  # the stack's own ocr reads it and calls back
    deadline = time.monotonic() + 30
    while not receiver.for_job(job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    (callback,) = receiver.for_job(job_id)
    assert callback.headers["Content-Type"].startswith("application/cloudevents+json")
    keys = jobs_fn.client.get("/event-keys").json["keys"]
    event = verify(callback.body, keys)
    assert event["type"] == "io.scanline.ocr.completed.v1" and event["source"] == "/functions/ocr"
    assert event["data"]["job_id"] == job_id and event["data"]["status"] == "done"
    tampered = callback.body.replace(b'"done"', b'"failed"')
    with pytest.raises(InvalidSignature):
        verify(tampered, keys)
    deadline = time.monotonic() + 5  # recorded once the receiver's answer is in
    while (view := jobs_fn.client.get(f"/{job_id}", headers=auth).json["callback"])[
            "state"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view["state"] == "delivered" and view["attempts"] == 1


def test_callbacks_only_to_allowed_hosts_and_never_through_redirects(
        jobs_fn: Function, ocr_fn: Function, receiver: Receiver) -> None:
    _, _, auth = new_user(jobs_fn.deps)
    for url in ("http://169.254.169.254/latest/meta-data", "http://127.0.0.1:5432/",
                "file:///etc/passwd", f"http://user@127.0.0.1:{receiver.port}/"):
        r = presign(jobs_fn, auth, 100, callback_url=url)
        assert r.status_code == 422, url
    user_id, _, auth = new_user(jobs_fn.deps)
    receiver.status = 302
    job_id = staged_job(jobs_fn.deps, user_id, SAMPLE.data, callback_url=receiver.url)
    assert deliver(ocr_fn, job_id, user_id).status_code == 200
    deadline = time.monotonic() + 10
    while len(receiver.for_job(job_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Each attempt reached the receiver, none followed its Location to the S3 server.
    assert len(receiver.for_job(job_id)) >= 2
    with jobs_fn.deps.unit_of_work() as uow:
        callback = uow.callbacks.get(job_id)
    assert callback is not None and callback.state == "pending"
    assert callback.last_error == "the receiver answered 302"


# --- deletion, retention, listing ------------------------------------------------------

def test_delete_removes_the_job_its_document_and_its_results(
        jobs_fn: Function, ocr_fn: Function) -> None:
    user_id, _, owner = new_user(jobs_fn.deps)
    _, _, other = new_user(jobs_fn.deps)
    job_id = staged_job(jobs_fn.deps, user_id, SAMPLE.data)
    assert deliver(ocr_fn, job_id, user_id).status_code == 200
    keys = ocr.stored_keys(job_row(jobs_fn.deps, job_id))
    assert stored(jobs_fn, keys[1])  # the searchable PDF
    assert jobs_fn.client.delete(f"/{job_id}", headers=other).status_code == 404
    assert jobs_fn.client.delete(f"/{job_id}", headers=owner).status_code == 204
    assert jobs_fn.client.get(f"/{job_id}", headers=owner).status_code == 404
    assert jobs_fn.client.get(f"/{job_id}/pdf", headers=owner).status_code == 404
    assert jobs_fn.client.delete(f"/{job_id}", headers=owner).status_code == 404
    assert not any(stored(jobs_fn, key) for key in keys)


def test_housekeeping_deletes_expired_jobs_with_their_objects(stack: object) -> None:
    clock = FixedClock(datetime.now(UTC))
    deps = Container(Settings.from_env({**function_environment("housekeeping"),
                                        "FUNCTION_NAME": "housekeeping"}), clock=clock)
    client = create_app(load_handler("housekeeping"), deps).test_client()
    try:
        user_id, _, _ = new_user(deps)
        done = staged_job(deps, user_id, SAMPLE.data)
        token = claimed(deps, done)
        with deps.unit_of_work() as uow:
            uow.jobs.complete(done, token, engine="tesseract", text="t", words=[], timings={})
        abandoned = staged_job(deps, user_id, SAMPLE.data, status=ocr.AWAITING_UPLOAD,
                               upload_expires_at=clock.now())
        young = staged_job(deps, user_id, SAMPLE.data, status=ocr.AWAITING_UPLOAD,
                           upload_expires_at=clock.now().replace(year=clock.now().year + 1))
        with deps.unit_of_work() as uow:
            uow.limits.clear(HOUSEKEEPING_RUNS, "run")  # a run of the stack's scheduler
        clock.advance(days=7, minutes=1)
        report = client.post("/").json
        assert report["status"] == "done" and report["deleted"]["ocr_jobs"] >= 2
        with deps.unit_of_work() as uow:
            assert uow.jobs.get(done) is None and uow.jobs.get(abandoned) is None
            assert uow.jobs.get(young) is not None
        for job_id in (done, abandoned):
            with pytest.raises(NotFound):
                deps.store.head(ocr.object_key(user_id, job_id))
        deps.store.head(ocr.object_key(user_id, young))
    finally:
        deps.close()


def test_an_upload_after_its_job_was_deleted_does_not_stay(stack: object) -> None:
    """The presigned URL stores an object job or no job until it expires: the object of a
    job deleted before then is deleted by housekeeping once the URL cannot write it."""
    clock = FixedClock(datetime.now(UTC))
    jobs = Container(Settings.from_env({**function_environment("ocr-jobs"),
                                        "FUNCTION_NAME": "ocr-jobs"}), clock=clock)
    keeper = Container(Settings.from_env({**function_environment("housekeeping"),
                                          "FUNCTION_NAME": "housekeeping"}), clock=clock)
    jobs_client = create_app(load_handler("ocr-jobs"), jobs).test_client()
    keeper_client = create_app(load_handler("housekeeping"), keeper).test_client()
    try:
        user_id, _, owner = new_user(jobs)
        presigned = jobs_client.post("/", headers=owner, json={
            "content_type": "image/png", "size": len(SAMPLE.data)}).json
        job_id = presigned["job_id"]
        assert jobs_client.delete(f"/{job_id}", headers=owner).status_code == 204
        assert post_upload(presigned, SAMPLE.data).status_code == 204  # S3 still takes it
        key = ocr.object_key(user_id, job_id)
        jobs.store.head(key)
        with keeper.unit_of_work() as uow:
            uow.limits.clear(HOUSEKEEPING_RUNS, "run")
        assert keeper_client.post("/").json["deleted"]["abandoned_uploads"] == 0  # URL live
        jobs.store.head(key)
        clock.advance(seconds=presigned["expires_in"] + 1)
        with keeper.unit_of_work() as uow:
            uow.limits.clear(HOUSEKEEPING_RUNS, "run")
        assert keeper_client.post("/").json["deleted"]["abandoned_uploads"] >= 1
        with pytest.raises(NotFound):
            jobs.store.head(key)
    finally:
        jobs.close()
        keeper.close()


def test_listing_pages_with_a_cursor_and_filters_by_status(jobs_fn: Function) -> None:
    user_id, _, owner = new_user(jobs_fn.deps)
    made = [staged_job(jobs_fn.deps, user_id, SAMPLE.data) for _ in range(5)]
    failed = staged_job(jobs_fn.deps, user_id, SAMPLE.data, status=ocr.FAILED)
    seen: list[str] = []
    cursor = None
    while True:
        page = jobs_fn.client.get("/", headers=owner, query_string={
            "limit": 2, **({"cursor": cursor} if cursor else {})}).json
        assert len(page["jobs"]) <= 2
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [failed, *reversed(made)]
    only = jobs_fn.client.get("/", headers=owner, query_string={"status": "failed"}).json
    assert [j["job_id"] for j in only["jobs"]] == [failed] and only["next_cursor"] is None
    bad = jobs_fn.client.get("/", headers=owner, query_string={"cursor": "not-ours"})
    assert bad.status_code == 422
