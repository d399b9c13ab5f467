"""Every event type can carry only what it declares, and nothing that must stay secret."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from scanline import payloads
from scanline.errors import InvalidInput
from scanline.payloads import EmailRequested, OcrRequested, Payload

PRODUCT_TYPES = [cls for cls in payloads.REGISTRY.values() if cls.__module__ == payloads.__name__]
# Names under which a secret or file content would travel.
SECRET = re.compile(r"pass(word|wd|phrase)?|secret|token|credential|api.?key|private|hash|"
                    r"digest|hmac", re.I)
CODE = re.compile(r"otp|code|pin|one.?time", re.I)
# Where a person's mail address would travel.
ADDRESS = re.compile(r"e.?mail|address|^to$|^cc$|^bcc$|recipient", re.I)
FILE_BYTES = re.compile(r"bytes|content|image|file|blob|base64|body|payload|attachment", re.I)
# Only mail text may be long: file bytes do not fit in any other field.
MAIL_TEXT_FIELDS = {("io.scanline.email.requested.v1", "text"),
                    ("io.scanline.email.requested.v1", "html")}
MAX_SHORT_STRING = 4096


def walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (pointer, sub-schema) of a schema, including those of nested objects."""
    if isinstance(schema, dict):
        yield path, schema
        for name, sub in (schema.get("properties") or {}).items():
            yield from walk(sub, f"{path}/{name}")
        for keyword in ("items", "additionalProperties"):
            if isinstance(schema.get(keyword), dict):
                yield from walk(schema[keyword], f"{path}/{keyword}")
        for keyword in ("anyOf", "oneOf", "allOf"):
            for index, sub in enumerate(schema.get(keyword) or []):
                yield from walk(sub, f"{path}/{keyword}/{index}")


def test_the_registry_holds_the_design_table() -> None:
    assert {cls.TYPE: cls.PRODUCERS for cls in PRODUCT_TYPES} == {
        "io.scanline.user.registered.v3": {"register"},
        "io.scanline.code.requested.v2": {"issue-otp"},
        "io.scanline.user.verified.v1": {"verify-otp"},
        "io.scanline.email.requested.v1": {"issue-otp", "ocr"},
        "io.scanline.email.sent.v2": {"send-email"},
        "io.scanline.ocr.requested.v1": {"ocr-jobs"},
        "io.scanline.ocr.completed.v1": {"ocr"},
    }


@pytest.mark.parametrize("cls", PRODUCT_TYPES, ids=lambda c: c.TYPE)
def test_no_type_can_carry_a_secret_file_bytes_or_a_stray_code(cls: type[Payload]) -> None:
    for pointer, schema in walk(cls.SCHEMA):
        name = pointer.rsplit("/", 1)[-1]
        assert not SECRET.search(name), f"{cls.TYPE}{pointer} looks like a secret"
        assert not FILE_BYTES.search(name), f"{cls.TYPE}{pointer} looks like file content"
        if cls is not EmailRequested:
            assert not CODE.search(name), f"{cls.TYPE}{pointer}: codes travel only in mail"
        if not cls.SEALED:  # whoever reads the broker reads this type
            assert not (ADDRESS.search(name) or schema.get("format") == "email"), \
                f"{cls.TYPE}{pointer}: a mail address travels only sealed"
        assert not {"contentEncoding", "contentMediaType"} & set(schema), pointer
        if schema.get("type") == "object" or "properties" in schema:
            assert schema.get("additionalProperties") is False, f"{cls.TYPE}{pointer} is open"
        if schema.get("type") == "string" and "enum" not in schema:
            limit = schema.get("maxLength")
            assert limit is not None, f"{cls.TYPE}{pointer} is unbounded"
            if (cls.TYPE, name) not in MAIL_TEXT_FIELDS:
                assert limit <= MAX_SHORT_STRING, f"{cls.TYPE}{pointer} could hold a file"


def test_the_walk_sees_nested_fields() -> None:
    # Guards the test above against a walk that looks at nothing.
    pointers = [p for p, _ in walk(EmailRequested.SCHEMA)]
    assert pointers == ["", "/to", "/subject", "/text", "/html"]


def test_payloads_round_trip_and_refuse_what_they_do_not_declare() -> None:
    payload = OcrRequested(bucket="scanline-uploads", key="uploads/u/j",
                           job_id="5f0c6bd0-6b55-4f6a-9a52-0a0b3c5c4c1e",
                           user_id="9d2b6c55-52b6-43a5-8d3f-67d1e0f3a0b5")
    assert OcrRequested.from_data(payload.to_data()) == payload
    with pytest.raises(InvalidInput):
        OcrRequested.from_data({**payload.to_data(), "image": "aGVsbG8="})


@pytest.mark.parametrize("field,value", [
    ("to", "victim@example.com\r\nBcc: everyone@example.com"),
    ("to", "@"), ("to", "a b@example.com"),
    ("subject", "Hello\r\nBcc: everyone@example.com"), ("subject", "tab\there"),
])
def test_mail_header_fields_cannot_hold_control_characters(field: str, value: str) -> None:
    data = {"to": "a@example.com", "subject": "s", "text": "t", field: value}
    with pytest.raises(InvalidInput) as refused:
        EmailRequested.from_data(data)
    assert refused.value.errors and refused.value.errors[0]["pointer"] == f"/{field}"
