"""Case 1: 100 OCR jobs while the ocr function process is killed with SIGKILL at 5 random
moments (supervisord starts it again). Every job ends ``done`` and its owner gets exactly one
completion mail: the broker redelivers what the dead process held, the job row makes the
redone work finish once, and the outbox relays what the process committed but never sent."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import sqlalchemy as sa

from bench.ocr_client import OcrClient
from bench.ocr_samples import generated
from scanline.adapters.ocr_jobs_tables import ocr_jobs
from scanline.bootstrap import Container
from scanline.domain import ocr
from tests.support.mailindex import Mail, MailIndex
from tests.support.outages import kill, wait_running
from tests.support.stack import Stack
from tests.support.tally import Tally

USERS, JOBS_PER_USER, KILLS = 5, 20, 5
UPLOAD_WINDOW = 30.0  # uploads are spread over this long, the kills fall inside it
FINISH_WITHIN = 240.0
JOB_IN_SUBJECT = re.compile(r"\(job ([0-9a-f-]{36})\)")
SAMPLE = next(s for s in generated() if s.name == "sans-20")  # the smallest image


def statuses(users: list[OcrClient]) -> dict[str, str]:
    found = {}
    for user in users:
        r = user.list(limit=100)
        r.raise_for_status()
        found.update({j["job_id"]: j["status"] for j in r.json()["jobs"]})
    return found


def attempts(container: Container, job_ids: list[str]) -> Counter[int]:
    """How many jobs were started how many times (above 1: a kill interrupted them)."""
    with container.db.connect() as conn:
        return Counter(conn.execute(
            sa.select(ocr_jobs.c.attempts).where(ocr_jobs.c.id.in_(job_ids))).scalars())


def wait_mid_job(container: Container, since: datetime, timeout: float = 15.0) -> None:
    """Return as soon as one of this test's jobs is being recognised, so the kill that
    follows interrupts work instead of landing between two jobs (a small image takes only
    tens of milliseconds; a kill at a random moment often finds the process idle)."""
    query = sa.select(sa.func.count()).where(
        ocr_jobs.c.status == ocr.PROCESSING, ocr_jobs.c.created_at >= since)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with container.db.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        time.sleep(0.005)


def test_every_job_finishes_once_while_ocr_is_killed(
        stack: Stack, mails: MailIndex, container: Container,
        figures: Callable[[Tally], Tally]) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    users = [OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="kill")
             for _ in range(USERS)]
    owner: dict[str, OcrClient] = {}
    kills: list[dict[str, object]] = []

    def killer() -> None:
        """Each kill hits a running process in the middle of a job; uploads keep arriving
        until after the last kill, so there is always work to interrupt."""
        pid = wait_running(stack, "ocr")
        for _ in range(KILLS):
            time.sleep(rng.uniform(2.0, 4.0))
            done = sum(s == "done" for s in statuses(users).values())
            wait_mid_job(container, since)  # then kill at once: a job ends in milliseconds
            kill(pid)
            kills.append({"at_s": round(time.monotonic() - started, 1), "pid": pid,
                          "jobs_done_before": done})
            pid = wait_running(stack, "ocr", other_than=pid)

    def upload(user: OcrClient) -> list[str]:
        ids = []
        for n in range(JOBS_PER_USER):
            time.sleep(max(0.0, started + n * UPLOAD_WINDOW / JOBS_PER_USER - time.monotonic()))
            r = user.upload(SAMPLE.data)
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        return ids

    with container.db.connect() as conn:
        since = conn.execute(sa.select(sa.func.now())).scalar_one()
    started = time.monotonic()
    killing = threading.Thread(target=killer)
    killing.start()
    with ThreadPoolExecutor(USERS) as pool:
        for user, ids in zip(users, pool.map(upload, users), strict=True):
            owner.update(dict.fromkeys(ids, user))
    uploads_ended = time.monotonic() - started
    killing.join(120)
    assert not killing.is_alive() and len(kills) == KILLS, kills

    deadline = time.monotonic() + FINISH_WITHIN
    while True:
        current = statuses(users)
        if all(s in ("done", "failed") for s in current.values()) \
                or time.monotonic() > deadline:
            break
        time.sleep(1)
    finished = time.monotonic() - started

    def key(mail: Mail) -> str | None:
        found = JOB_IN_SUBJECT.search(mail.subject)
        job = found.group(1) if found else None
        return job if job in owner and owner[job].email == mail.to else None

    mailed = mails.wait_for_all(owner, key, timeout=60)
    done = Counter(j for j, s in current.items() if s == "done")
    delivered = Counter({j: mailed[j] for j in done})
    started_times = attempts(container, list(owner))
    tally = figures(Tally.of(
        "1 ocr SIGKILL x5 during 100 jobs", owner, delivered, seed=seed, kills=kills,
        statuses=dict(Counter(current.values())), jobs_by_attempts=dict(started_times),
        uploads_ended_s=round(uploads_ended, 1), all_finished_after_s=round(finished, 1)))
    assert len(current) == len(owner) == USERS * JOBS_PER_USER
    assert set(done) == set(owner), Counter(current.values())
    assert all(k["jobs_done_before"] < len(owner) for k in kills), kills  # kills hit work
    assert any(n > 1 for n in started_times), "no kill interrupted a job"
    assert tally.ok, tally.line()
