"""Case 2: RabbitMQ stops and starts again while 200 ``email.requested`` events are under
way; every mail is delivered exactly once.

Two producers run through the outage, as in production:
- 100 sign-ups over HTTP: ``register`` commits the user and its ``user.registered`` event to
  the outbox and answers 202 without waiting for the broker; the relay publishes it (with
  confirms) once the broker is back; ``issue-otp`` emits the ``email.requested`` (outbox
  again) that ``send-email`` delivers. "Sent" = a 202; delivered = the verification mail.
- 100 ``email.requested`` events published by the test itself with publisher confirms,
  retried until confirmed as a producer must. "Sent" = confirmed; a retried publish may
  enqueue twice, which send-email's de-duplication on the event id must absorb.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from scanline.payloads import EmailRequested
from tests.support import clients
from tests.support.mailindex import Mail, MailIndex
from tests.support.outages import rabbitmq_stopped
from tests.support.producer import Producer, email_event
from tests.support.stack import Stack
from tests.support.tally import Tally

SIGNUPS = 100
DIRECT = 100
OUTAGE = 8.0
SPREAD = 20.0  # both producers spread their events over this long
PASSWORD = "correct horse battery staple"


def test_every_mail_is_delivered_once_across_a_broker_restart(
        stack: Stack, mails: MailIndex, figures: Callable[[Tally], Tally]) -> None:
    run = uuid.uuid4().hex[:8]
    addresses = [f"mq-{run}-{i}@example.com" for i in range(SIGNUPS)]
    statuses: dict[str, int] = {}
    answered_at: dict[str, float] = {}
    direct: list[str] = []
    producer = Producer(stack.amqp_url, give_up_after=120)

    def sign_up(n: int, address: str) -> None:
        time.sleep(max(0.0, started + n * SPREAD / SIGNUPS - time.monotonic()))
        # Each from a client address of its own: one client may register 30 an hour.
        r = clients.session().post(f"{stack.gateway}/function/register", timeout=30,
                          json={"name": "Fault", "email": address, "password": PASSWORD})
        statuses[address], answered_at[address] = r.status_code, time.monotonic()

    def publish_all() -> None:
        with producer:
            for i in range(DIRECT):
                event_id, body = email_event(f"mq-direct-{run}-{i}@example.com",
                                             f"broker restart {run} {i}")
                producer.publish(EmailRequested.TYPE, body)
                direct.append(event_id)
                time.sleep(random.uniform(0.5, 1.5) * SPREAD / DIRECT)

    publisher = threading.Thread(target=publish_all)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        publisher.start()
        signups = [pool.submit(sign_up, n, a) for n, a in enumerate(addresses)]
        time.sleep(SPREAD / 4)  # well into both streams, which go on after the restart
        outage_started = time.monotonic()
        with rabbitmq_stopped():
            time.sleep(OUTAGE)
        outage_ended = time.monotonic()
        for future in signups:
            future.result()
        publisher.join(180)
    back = time.monotonic()

    accepted = [a for a in addresses if statuses.get(a) == 202]
    during = sum(outage_started < answered_at[a] < outage_ended for a in accepted)

    def key(mail: Mail) -> str | None:
        if mail.event_id in direct_ids:
            return mail.event_id
        if mail.to in accepted_set and "verification code" in mail.subject:
            return mail.to
        return None

    direct_ids, accepted_set = set(direct), set(accepted)
    delivered = mails.wait_for_all([*accepted, *direct], key, timeout=120)
    tally = figures(Tally.of(
        "2 rabbitmq restart", [*accepted, *direct], delivered,
        outage_s=round(outage_ended - outage_started, 1), signups_accepted=len(accepted),
        signups_accepted_during_outage=during, direct_confirmed=len(direct),
        publish_retries=producer.retries, drained_after_s=round(time.monotonic() - back, 1)))
    assert len(accepted) == SIGNUPS, f"register must accept while the broker is down: {statuses}"
    assert len(direct) == DIRECT
    assert during > 0 and producer.retries > 0, "both producers must have met the outage"
    assert tally.ok, tally.line()
