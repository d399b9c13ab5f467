"""Case 5: poison messages. On every queue (each function with a ``topic`` annotation) a
message that can never succeed is dead-lettered after at most the delivery limit, the queue
keeps flowing, and the documented ``python -m infra.local.deadletters list|replay`` shows
and replays dead letters."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pika
import pytest
import requests

from bench.ocr_client import OcrClient
from bench.ocr_samples import generated
from infra.local import paths
from infra.local.deadletters import DeadLetter, fetch_all
from infra.local.stackfile import load
from scanline import payloads
from scanline.adapters.topology import dead_letter_queue, queue_name
from scanline.payloads import EmailRequested
from tests.faults.slow_function.handler import FAULT_EVENT, FaultEvent
from tests.support.mailindex import MailIndex
from tests.support.outages import program_stopped
from tests.support.producer import Producer, email_event, event_body
from tests.support.signing import signed_data
from tests.support.stack import Stack
from tests.support.tally import Tally
from tests.support.testfunction import TestFunction

TOPIC_FUNCTIONS = {name: f.topics[0] for name, f in load().functions.items() if f.topics}
Check = Callable[[], bool]


def deadletters(*args: str) -> str:
    """The documented command, as an operator runs it."""
    result = subprocess.run([str(paths.PYTHON), "-m", "infra.local.deadletters", *args],
                            cwd=paths.REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def listed(function: str) -> dict[str, str]:
    """Dead letters of ``function`` by id → the line ``list`` printed for it."""
    lines = deadletters("list", function).splitlines()[1:]
    return {line.split()[0]: line for line in lines if line.strip()}


def take_dead_letters(url: str, queue: str, ids: set[str]) -> list[DeadLetter]:
    """Remove the letters with these ids from ``queue``; others' letters are left in place."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        taken = []
        for letter in fetch_all(channel, queue):
            if letter.id in ids:
                channel.basic_ack(letter.method.delivery_tag)
                taken.append(letter)
        return taken  # closing the connection returns the others
    finally:
        connection.close()


def good_message(function: str, stack: Stack, producer: Producer, mails: MailIndex) -> Check:
    """Send one message that must flow through ``function``'s queue; returns its check."""
    run = uuid.uuid4().hex[:8]
    if function == "send-email":
        event_id, body = email_event(f"poison-{run}@example.com", f"after poison {run}")
        producer.publish(EmailRequested.TYPE, body)
        return lambda: event_id in mails.count(lambda m: m.event_id)
    if function == "issue-otp":
        address = f"poison-{run}@example.com"
        assert requests.post(f"{stack.gateway}/function/register", timeout=30, json={
            "name": "Poison", "email": address, "password": "correct horse battery staple",
        }).status_code == 202
        return lambda: address in mails.count(
            lambda m: m.to if "verification code" in m.subject else None)
    if function == "ocr":
        user = OcrClient.sign_up(stack.gateway, stack.mail_dir, prefix="poison")
        job_id = user.upload(generated()[0].data).json()["job_id"]
        return lambda: user.get(job_id).json()["status"] == "done"
    raise AssertionError(f"no good message defined for the new queue of {function}")


def wait(check: Check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def test_poison_is_dead_lettered_at_once_and_every_queue_keeps_flowing(
        stack: Stack, producer: Producer, mails: MailIndex,
        figures: Callable[[Tally], Tally]) -> None:
    poisons: dict[str, set[str]] = {}
    expected_reasons: dict[str, str] = {}
    for function, topic in TOPIC_FUNCTIONS.items():
        not_json = str(uuid.uuid4())
        producer.publish(topic, b"\x00\xffnot a cloudevent", message_id=not_json)
        # A trusted producer's signature over data its type refuses.
        payload = payloads.by_type(topic)
        assert payload is not None
        bad_id, bad = event_body(signed_data(topic, {"poison": True},
                                             sorted(payload.PRODUCERS)[0]))
        producer.publish(topic, bad)
        poisons[function] = {not_json, bad_id}
        expected_reasons[not_json], expected_reasons[bad_id] = "400 ", "422 "
    checks = {f: good_message(f, stack, producer, mails) for f in TOPIC_FUNCTIONS}

    flowed = {f: wait(check, 60) for f, check in checks.items()}
    dead: dict[str, dict[str, str]] = {}
    for function, ids in poisons.items():
        wait(lambda f=function, i=ids: i <= set(listed(f)), 30)
        dead[function] = {i: line for i, line in listed(function).items() if i in ids}
        take_dead_letters(stack.amqp_url, dead_letter_queue(function), ids)

    sent = [i for ids in poisons.values() for i in ids]
    tally = figures(Tally.of(
        "5 poison on every queue (dead-lettered)", sent,
        Counter(i for letters in dead.values() for i in letters),
        queues=sorted(TOPIC_FUNCTIONS), good_message_flowed=flowed))
    assert tally.ok, dead
    for function, letters in dead.items():
        for event_id, line in letters.items():
            # Dead-lettered at once with the function's own reason (no retry for a
            # permanent failure), and replayable to where it was published.
            assert f"  {expected_reasons[event_id]}" in line, line
            assert f"-> scanline.events/{TOPIC_FUNCTIONS[function]}" in line, line
    assert all(flowed.values()), flowed


@pytest.fixture
def failing(fault_function: Callable[..., TestFunction]) -> TestFunction:
    return fault_function("fault-poison", delivery_limit=3)


def test_a_message_that_always_fails_is_dead_lettered_after_the_delivery_limit(
        stack: Stack, producer: Producer, failing: TestFunction,
        figures: Callable[[Tally], Tally]) -> None:
    poison_id, poison = failing.event(FaultEvent(fail=True))
    producer.publish(FAULT_EVENT, poison)
    good = []
    for _ in range(20):
        event_id, body = failing.event(FaultEvent(sleep_ms=10))
        producer.publish(FAULT_EVENT, body)
        good.append(event_id)
    dead: list[DeadLetter] = []

    def dead_lettered() -> bool:
        dead.extend(take_dead_letters(stack.amqp_url, failing.dead_letters, {poison_id}))
        return bool(dead)

    assert wait(dead_lettered, 60), "the failing message was never dead-lettered"
    deliveries = Counter(failing.stats()["deliveries"])
    tally = figures(Tally.of(
        "5 always-failing message (limit 3)", good, deliveries,
        poison_deliveries=deliveries[poison_id], dead_letter_reason=dead[0].reason))
    assert tally.ok, tally.line()
    assert 1 < deliveries[poison_id] <= failing.delivery_limit + 1, deliveries[poison_id]
    assert dead[0].reason.startswith("delivery_limit"), dead[0].reason
    assert failing.ready_count() == 0


def test_a_dead_letter_is_listed_and_replayed_once(stack: Stack, mails: MailIndex,
                                                   producer: Producer) -> None:
    """An email.requested that a consumer rejected (say, during a bad deploy) is replayed by
    the operator once the cause is fixed: it is delivered, once, and leaves the DLQ."""
    event_id, body = email_event(f"replay-{uuid.uuid4().hex[:8]}@example.com", "replayed")
    with program_stopped(stack, "trigger"):
        producer.publish(EmailRequested.TYPE, body)
        connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
        try:
            channel = connection.channel()
            for _ in range(1000):
                method, _, got = channel.basic_get(queue_name("send-email"))
                assert method is not None, "the published event is not in the queue"
                if event_id.encode() in got:
                    channel.basic_reject(method.delivery_tag, requeue=False)
                    break
                channel.basic_nack(method.delivery_tag, requeue=True)  # someone else's
        finally:
            connection.close()
    assert wait(lambda: event_id in listed("send-email"), 10)
    assert "rejected" in listed("send-email")[event_id]
    assert mails.count(lambda m: m.event_id)[event_id] == 0

    out = deadletters("replay", "send-email", "--id", event_id)
    assert f"replayed {event_id} to scanline.events/{EmailRequested.TYPE}" in out
    assert wait(lambda: event_id in mails.count(lambda m: m.event_id), 30)
    time.sleep(2)
    assert mails.count(lambda m: m.event_id)[event_id] == 1
    assert event_id not in listed("send-email")
