"""Every event Scanline emits, in one place: its type, its data, its schema, its producers.

An event type is a frozen dataclass decorated with ``@event_type``: the CloudEvents
``type`` string, the functions allowed to emit it (a consumer refuses the event when the
key that signed it belongs to any other function), and one JSON Schema per field, from
which the type's schema is assembled. Producers emit instances (``uow.emit(...)``, checked
against the schema before they reach the outbox); consumers receive instances built from
the verified event's data (``Payload.from_data``), so a handler never sees a raw dict.

The schemas are strict (no unknown members) and bounded (every string has a maximum
length): an event can carry only what is written here. ``tests/unit/test_payloads.py``
walks every type and fails if one could carry a password, a token, file bytes, or a code
outside ``email.requested``. A field that changes meaning, or a new required one, is a new
type (``….v2``) that consumers learn before producers emit it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar

from scanline.errors import InvalidInput
from scanline.validation import compiled, strict_object

# Header-bound text (mail To and Subject) may not hold a control character: CR/LF would
# inject headers, and no address or subject of ours has one.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
UUID = {"type": "string", "format": "uuid", "maxLength": 36}
EMAIL_ADDRESS = {"type": "string", "minLength": 3, "maxLength": 320, "format": "email",
                 "pattern": r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"}
OBJECT_KEY = {"type": "string", "minLength": 1, "maxLength": 1024,
              "pattern": NO_CONTROL_CHARACTERS}
SHORT_TEXT = {"type": "string", "maxLength": 2000}


def prop(schema: Mapping[str, Any], **options: Any) -> Any:
    """A dataclass field with its JSON Schema (``default=None`` makes it optional)."""
    return dataclasses.field(metadata={"schema": dict(schema)}, **options)


class Payload:
    """Base of every event type; ``@event_type`` fills the class variables."""

    TYPE: ClassVar[str]
    PRODUCERS: ClassVar[frozenset[str]]
    SCHEMA: ClassVar[dict[str, Any]]
    # Sealed for its consumer (scanline.sealing): on the wire only send-email can read it.
    SEALED: ClassVar[bool] = False

    def to_data(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if getattr(self, f.name) is not None}
        compiled(self.SCHEMA).check(data, InvalidInput, "the event does not match its type")
        return data

    @classmethod
    def from_data(cls, data: Any) -> Self:
        """An instance from received data, or ``InvalidInput`` listing what is wrong."""
        compiled(cls.SCHEMA).check(data, InvalidInput,
                                   f"the {cls.TYPE} event data does not match its type")
        return cls(**data)


P = TypeVar("P", bound=type[Payload])
REGISTRY: dict[str, type[Payload]] = {}


def event_type(type_: str, *, producers: set[str], sealed: bool = False) -> Callable[[P], P]:
    def register(cls: P) -> P:
        cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        cls.TYPE, cls.PRODUCERS, cls.SEALED = type_, frozenset(producers), sealed
        cls.SCHEMA = strict_object(
            {f.name: f.metadata["schema"] for f in fields},
            required=[f.name for f in fields if f.default is dataclasses.MISSING])
        if type_ in REGISTRY:
            raise ValueError(f"event type {type_} is declared twice")
        REGISTRY[type_] = cls
        return cls
    return register


def by_type(type_: str) -> type[Payload] | None:
    return REGISTRY.get(type_)


@event_type("io.scanline.user.registered.v3", producers={"register"})
class UserRegistered(Payload):
    """A sign-up: issue-otp mails the registration's address a code for it, or, if the
    address already has an account, a notice. Only the registration's id travels: the
    address is read from the registration, so a reader of the broker learns none. (v1
    named an unverified user; v2 carried the address.)"""

    registration_id: str = prop(UUID)


@event_type("io.scanline.code.requested.v2", producers={"issue-otp"})
class CodeRequested(Payload):
    """Someone asked issue-otp over HTTP for a code. The request is answered at once, the
    same way for every address, and kept in the database (``code_requests``); whether a
    mail goes out is decided here, off the request path, so neither the answer nor its
    timing tells anything. Only the request's id travels. (v1 carried the address.)"""

    request_id: str = prop(UUID)


@event_type("io.scanline.user.verified.v1", producers={"verify-otp"})
class UserVerified(Payload):
    user_id: str = prop(UUID)


@event_type("io.scanline.email.requested.v1", producers={"issue-otp", "ocr"}, sealed=True)
class EmailRequested(Payload):
    """A mail for send-email to deliver. The one type that may carry a verification code
    (in ``text``), because the mail itself is how the code reaches its owner; sealed, so
    nobody but send-email reads it on the broker."""

    to: str = prop(EMAIL_ADDRESS)
    subject: str = prop({"type": "string", "minLength": 1, "maxLength": 998,
                         "pattern": NO_CONTROL_CHARACTERS})
    text: str = prop({"type": "string", "maxLength": 1_000_000})
    html: str | None = prop({"type": "string", "maxLength": 2_000_000}, default=None)


@event_type("io.scanline.email.sent.v2", producers={"send-email"})
class EmailSent(Payload):
    """The mail of ``email.requested`` event ``request_id`` went to the SMTP server; the
    event's subject is the one of that request. (v1 carried the address.)"""

    request_id: str = prop({"type": "string", "minLength": 1, "maxLength": 200})


@event_type("io.scanline.ocr.requested.v1", producers={"ocr-jobs"})
class OcrRequested(Payload):
    """A job whose upload is staged: only the object's key travels, never its bytes."""

    bucket: str = prop({"type": "string", "minLength": 3, "maxLength": 63})
    key: str = prop(OBJECT_KEY)
    job_id: str = prop(UUID)
    user_id: str = prop(UUID)


@event_type("io.scanline.ocr.completed.v1", producers={"ocr"})
class OcrCompleted(Payload):
    job_id: str = prop(UUID)
    user_id: str = prop(UUID)
    status: str = prop({"enum": ["done", "failed"]})
    engine: str | None = prop({"type": "string", "maxLength": 40}, default=None)
    error: str | None = prop(SHORT_TEXT, default=None)
