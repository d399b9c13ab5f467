"""Each adapter against its real server: PostgreSQL, RabbitMQ, the S3 server, the SMTP sink."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from scanline.adapters.bus import AmqpPublisher
from scanline.adapters.outbox import Outbox
from scanline.adapters.tables import outbox
from scanline.bootstrap import Container
from scanline.errors import Conflict, DependencyUnavailable, NotFound, PayloadTooLarge
from scanline.payloads import EmailRequested, EmailSent
from tests.support.broker import EventTap
from tests.support.mailbox import Mailbox


@pytest.fixture
def sender(container: Container) -> Iterator[Container]:
    """The adapters as send-email has them: it may emit (and signs) ``email.sent``."""
    built = Container(dataclasses.replace(container.settings, function_name="send-email"))
    yield built
    built.close()


def sent(probe: str) -> EmailSent:
    return EmailSent(request_id=probe)


def test_outbox_publishes_signed_events_after_commit_and_deletes_the_row(
        sender: Container, tap: EventTap) -> None:
    uow = sender.unit_of_work([EmailSent])
    with tap.listen(EmailSent.TYPE) as received:
        with uow:
            event = uow.emit(sent(uuid.uuid4().hex))
        got = received.wait_for(event.id)
    assert got.data == event.data and got.source == "/functions/send-email"
    assert sender.event_verifier.verify(got) == "send-email"
    with sender.db.connect() as conn:
        assert conn.execute(sa.select(outbox.c.id).where(outbox.c.id == event.id)).first() is None


def test_rolled_back_transaction_emits_nothing(sender: Container, tap: EventTap) -> None:
    uow = sender.unit_of_work([EmailSent])
    with tap.listen(EmailSent.TYPE) as received:
        with pytest.raises(RuntimeError), uow:
            event = uow.emit(sent("rollback"))
            raise RuntimeError("handler failed")
        assert received.absent(event.id, seconds=1.0)


def test_a_unit_of_work_emits_only_what_its_route_declared(sender: Container,
                                                          container: Container) -> None:
    with pytest.raises(RuntimeError, match="declares"), sender.unit_of_work([EmailSent]) as uow:
        uow.emit(EmailRequested(to="a@example.com", subject="s", text="t"))
    # Declared, but the function is not among the type's producers.
    with pytest.raises(RuntimeError, match="may not emit"), \
            container.unit_of_work([EmailSent]) as uow:
        uow.emit(sent("not-mine"))


def test_events_wait_in_the_outbox_while_the_broker_is_down(sender: Container,
                                                            tap: EventTap) -> None:
    dead = Outbox(sender.db, AmqpPublisher("amqp://nobody@127.0.0.1:1/%2F", lambda: "x"),
                  relay_after=0)
    with sender.unit_of_work([EmailSent]) as uow:
        event = uow._emitter.build(sent("kept"), None)  # signed, not yet in the outbox
        uow.conn.execute(outbox.insert().values(id=event.id, type=event.type,
                                                body=event.to_structured()))
    dead.flush([event.id])  # broker unreachable: logged, row kept, no exception
    with sender.db.connect() as conn:
        assert conn.execute(sa.select(outbox.c.id).where(outbox.c.id == event.id)).first()
    assert dead.backlog() >= 1  # what scanline_outbox_backlog reports
    live = Outbox(sender.db, sender.publisher, relay_after=0)
    with tap.listen(EmailSent.TYPE) as received:
        assert live.relay() >= 1
        assert received.wait_for(event.id).id == event.id


def test_claim_is_once_per_consumer_even_concurrently(container: Container) -> None:
    event_id = str(uuid.uuid4())
    results: list[bool] = []
    uow = container.unit_of_work()

    def claim() -> None:
        with uow:
            results.append(uow.inbox.claim(event_id))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    other = Container(dataclasses.replace(container.settings, function_name="another"))
    with other.unit_of_work() as another:
        assert another.inbox.claim(event_id)
    other.close()


def test_object_store_round_trip(container: Container) -> None:
    store = container.store
    key = f"itest/{uuid.uuid4()}"
    store.put(key, b"\x89PNG....", "image/png")
    assert store.get(key) == b"\x89PNG...."
    assert store.head(key)["ContentLength"] == 8
    assert store.read_range(key, 4) == b"\x89PNG"
    etag = store.head(key)["ETag"]
    assert store.get(key, etag=etag, max_bytes=8) == b"\x89PNG...."
    with pytest.raises(PayloadTooLarge):
        store.get(key, max_bytes=7)
    store.put(key, b"\x89PNG,,,,", "image/png")
    with pytest.raises(Conflict):
        store.get(key, etag=etag)
    upload = store.presign_post(key, "image/png", 8, 60)
    assert upload["url"].startswith("http") and upload["fields"]["Content-Type"] == "image/png"
    store.delete(key)
    with pytest.raises(NotFound):
        store.head(key)


def test_mailer_delivers_to_the_sink(container: Container, mailbox: Mailbox) -> None:
    subject = f"itest {uuid.uuid4()}"
    message = EmailMessage()
    message["From"], message["To"] = "a@scanline.local", "b@example.com"
    message["Subject"] = subject
    message.set_content("hello")
    container.mailer.send(message)
    assert "hello" in mailbox.wait_for(subject=subject).get_content()


def test_unreachable_servers_are_dependency_unavailable(container: Container) -> None:
    from scanline.adapters.db import Database
    from scanline.adapters.mail import SmtpMailer

    with pytest.raises(DependencyUnavailable):
        Database("postgresql+pg8000://x@127.0.0.1:1/x", lambda: None).ping()
    with pytest.raises(DependencyUnavailable):
        AmqpPublisher("amqp://x@127.0.0.1:1/%2F", lambda: None).ping()
    with pytest.raises(DependencyUnavailable):
        SmtpMailer("127.0.0.1", 1, starttls=False, username="", password=lambda: None).ping()
