"""Case 4: the SMTP server is down for 30 s; every mail requested meanwhile arrives once
it is back, exactly once (send-email answers 503, the trigger retries with back-off)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from infra.local import paths
from infra.local.services import port_open
from scanline.payloads import EmailRequested
from tests.support.mailindex import MailIndex
from tests.support.outages import program_stopped
from tests.support.producer import Producer, email_event
from tests.support.stack import Stack
from tests.support.tally import Tally

OUTAGE = 30.0
MAILS = 30


def test_mails_requested_while_smtp_is_down_arrive_after_it_returns(
        stack: Stack, producer: Producer, mails: MailIndex,
        figures: Callable[[Tally], Tally]) -> None:
    run = uuid.uuid4().hex[:8]
    sent: list[str] = []
    with program_stopped(stack, "mailsink"):
        started = time.monotonic()
        # Spread over the outage: early ones are retried many times, late ones a few.
        for i in range(MAILS):
            event_id, body = email_event(f"smtp-{run}-{i}@example.com", f"smtp outage {run} {i}")
            producer.publish(EmailRequested.TYPE, body)
            sent.append(event_id)
            time.sleep(OUTAGE * 0.8 / MAILS)
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - started)))
        sink_was_down = not port_open(paths.SMTP_PORT)
        during = mails.count(lambda m: m.event_id if m.event_id in sent else None)
    back = time.monotonic()
    delivered = mails.wait_for_all(sent, lambda m: m.event_id, timeout=60)
    tally = figures(Tally.of("4 smtp sink down 30 s", sent, delivered,
                             arrived_during_outage=sum(during.values()),
                             drained_after_s=round(time.monotonic() - back, 1)))
    assert sink_was_down and not during, "the sink was not really down"
    assert tally.ok, tally.line()
