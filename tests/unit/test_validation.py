"""Payload validation: schema faults and text PostgreSQL cannot store are one 422."""

import pytest

from scanline.errors import InvalidInput
from scanline.validation import strict_object, validate

SCHEMA = strict_object({"name": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}}}, ["name"])


@pytest.mark.parametrize(("data", "pointer", "detail"), [
    ({"name": "a\x00b"}, "/name", "contains a NUL character"),
    ({"name": "a\ud800b"}, "/name", "is not valid Unicode (a lone surrogate)"),
    ({"name": "ok", "tags": ["fine", "x\x00"]}, "/tags/1", "contains a NUL character"),
])
def test_unstorable_text_is_invalid_input_without_quoting_it(
        data: dict[str, object], pointer: str, detail: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate(data, SCHEMA)
    assert raised.value.errors == [{"pointer": pointer, "detail": detail}]


def test_any_other_unicode_is_accepted() -> None:
    data = {"name": "Zoë 数字 🙂", "tags": ["ünïcödé"]}
    assert validate(data, SCHEMA) is data
