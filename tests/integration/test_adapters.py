"""Each adapter against its real server: PostgreSQL, RabbitMQ, the S3 server, the SMTP sink."""

from __future__ import annotations

import threading
import uuid
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from scanline import events
from scanline.adapters.bus import AmqpPublisher
from scanline.adapters.outbox import Outbox
from scanline.adapters.tables import outbox
from scanline.bootstrap import Container
from scanline.errors import DependencyUnavailable, NotFound
from tests.support.broker import EventTap
from tests.support.mailbox import Mailbox


def test_outbox_publishes_after_commit_and_deletes_the_row(container: Container,
                                                           tap: EventTap) -> None:
    event = container.event(events.EMAIL_SENT, {"probe": uuid.uuid4().hex})
    with tap.listen(events.EMAIL_SENT) as received:
        with container.uow() as uow:
            uow.emit(event)
        assert received.wait_for(event.id).data == event.data
    with container.db.connect() as conn:
        assert conn.execute(sa.select(outbox.c.id).where(outbox.c.id == event.id)).first() is None


def test_rolled_back_transaction_emits_nothing(container: Container, tap: EventTap) -> None:
    event = container.event(events.EMAIL_SENT, {"probe": "rollback"})
    with tap.listen(events.EMAIL_SENT) as received:
        with pytest.raises(RuntimeError), container.uow() as uow:
            uow.emit(event)
            raise RuntimeError("handler failed")
        assert received.absent(event.id, seconds=1.0)


def test_events_wait_in_the_outbox_while_the_broker_is_down(container: Container,
                                                            tap: EventTap) -> None:
    dead = Outbox(container.db, AmqpPublisher("amqp://nobody@127.0.0.1:1/%2F", lambda: "x"),
                  relay_after=0)
    event = container.event(events.EMAIL_SENT, {"probe": "kept"})
    with container.db.connect() as conn:
        conn.execute(outbox.insert().values(id=event.id, type=event.type,
                                            body=event.to_structured()))
    dead.flush([event.id])  # broker unreachable: logged, row kept, no exception
    with container.db.connect() as conn:
        assert conn.execute(sa.select(outbox.c.id).where(outbox.c.id == event.id)).first()
    live = Outbox(container.db, container.publisher, relay_after=0)
    with tap.listen(events.EMAIL_SENT) as received:
        assert live.relay() >= 1
        assert received.wait_for(event.id).id == event.id


def test_claim_is_once_per_consumer_even_concurrently(container: Container) -> None:
    event_id = str(uuid.uuid4())
    results: list[bool] = []

    def claim() -> None:
        with container.uow() as uow:
            results.append(uow.claim("itest", event_id))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    with container.uow() as uow:
        assert uow.claim("another-consumer", event_id)


def test_object_store_round_trip(container: Container) -> None:
    store = container.store
    key = f"itest/{uuid.uuid4()}"
    store.put(key, b"\x89PNG....", "image/png")
    assert store.get(key) == b"\x89PNG...."
    assert store.head(key)["ContentLength"] == 8
    assert store.read_range(key, 4) == b"\x89PNG"
    assert store.presign_put(key, "image/png", 60).startswith("http")
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
