"""Cases 6 and 7: a long multi-page job whose worker is killed, and a callback receiver
that is down for 30 s. The job finishes once, never read by two workers at the same time
(the dead worker's lease must run out first); the callback arrives after the receiver is
back, once."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.ocr_client import OcrClient
from bench.ocr_samples import generated, letter_page, page_images, scanned_pdf
from scanline.adapters.ocr_jobs_tables import ocr_jobs
from scanline.bootstrap import Container
from scanline.domain import ocr
from tests.support.callbacks import Receiver
from tests.support.mailindex import Mail, MailIndex
from tests.support.outages import kill, wait_running
from tests.support.stack import Stack
from tests.support.tally import Tally

JOB_IN_SUBJECT = re.compile(r"\(job ([0-9a-f-]{36})\)")
PAGES = 4


def job_state(container: Container, job_id: str) -> tuple[str, int, datetime | None]:
    with container.db.connect() as conn:
        row = conn.execute(sa.select(ocr_jobs.c.status, ocr_jobs.c.attempts,
                                     ocr_jobs.c.lease_expires_at)
                           .where(ocr_jobs.c.id == job_id)).one()
    return row.status, row.attempts, row.lease_expires_at


def test_a_killed_multi_page_job_finishes_once_and_never_twice_at_once(
        stack: Stack, mails: MailIndex, container: Container,
        figures: Callable[[Tally], Tally]) -> None:
    user = OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="long")
    document = scanned_pdf(page_images([letter_page(seed=s) for s in range(PAGES)]))
    job_id = user.upload(document, "letters.pdf", "application/pdf").json()["job_id"]
    pid = wait_running(stack, "ocr")
    deadline = time.monotonic() + 60
    while job_state(container, job_id)[0] != ocr.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # well into its first pages
    _, attempts_before, lease_until = job_state(container, job_id)
    kill(pid)
    killed_at = datetime.now(UTC)
    wait_running(stack, "ocr", other_than=pid)
    # While the dead worker's lease lasts, a redelivery finds the job busy: no second run.
    while datetime.now(UTC) < (lease_until or killed_at):
        assert job_state(container, job_id)[1] == attempts_before
        time.sleep(0.2)
    job = user.wait_done(job_id, timeout=240)
    status, attempts, _ = job_state(container, job_id)

    def key(mail: Mail) -> str | None:
        found = JOB_IN_SUBJECT.search(mail.subject)
        return found.group(1) if found and mail.to == user.email else None

    mailed = mails.wait_for_all([job_id], key, timeout=60)
    tally = figures(Tally.of(
        "6 ocr SIGKILL during a 4-page job", [job_id], mailed, attempts=attempts,
        killed_after_attempts=attempts_before))
    assert status == "done" and job["status"] == "done" and len(job["pages"]) == PAGES
    assert attempts == attempts_before + 1  # one run restarted, after the lease, once
    assert mailed[job_id] == 1
    assert tally.ok, tally.line()


def test_a_callback_receiver_down_for_30_s_gets_the_callback_after_once(
        stack: Stack, figures: Callable[[Tally], Tally]) -> None:
    user = OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="hook")
    receiver = Receiver()  # not started yet: its port refuses connections
    job_id = user.upload(generated()[0].data, callback_url=receiver.url).json()["job_id"]
    assert user.wait_done(job_id)["status"] == "done"
    time.sleep(30)
    pending = user.get(job_id).json()["callback"]
    assert pending["state"] == "pending" and pending["attempts"] >= 3, pending
    receiver.start()
    try:
        deadline = time.monotonic() + 90
        while not receiver.for_job(job_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # a second delivery would come now
        delivered = receiver.for_job(job_id)
    finally:
        receiver.stop()
    view = user.get(job_id).json()["callback"]
    tally = figures(Tally.of("7 callback receiver down 30 s", [job_id],
                             Counter({job_id: len(delivered)}), attempts=view["attempts"]))
    assert len(delivered) == 1 and json.loads(delivered[0].body)["subject"] == job_id
    assert view["state"] == "delivered"
    assert tally.ok, tally.line()
